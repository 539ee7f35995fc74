//! Errors in words.

/// An error and every cause under it, `: `-separated, a cause left out
/// when the text above already ends with it: a client's own text often
/// says little (the Postgres driver's "db error", "error performing TLS
/// handshake", reqwest's "error sending request") and its cause says why
/// (the server's message, the certificate refused). For messages not
/// printed through `anyhow`, which walks the chain itself.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|layer| layer as _)
        }
    }

    #[test]
    fn causes_follow_unless_already_said() {
        let error = Layer(
            "db error",
            Some(Box::new(Layer(
                "handshake failed: bad certificate",
                Some(Box::new(Layer("bad certificate", None))),
            ))),
        );
        assert_eq!(
            error_chain(&error),
            "db error: handshake failed: bad certificate"
        );
        assert_eq!(error_chain(&Layer("alone", None)), "alone");
    }
}
