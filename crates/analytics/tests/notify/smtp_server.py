"""An SMTP server for the e-mail tests: aiosmtpd, written by others, run by
scripts/smtp-server. Every message it accepts is appended to --out as one
JSON line {"mail_from", "rcpt_tos", "data", "tls", "login"}.

    smtp_server.py --port N --out FILE [--cert PEM --key PEM] [--user U --password P]

With --cert and --key it offers STARTTLS and requires it before MAIL (and
before AUTH); with --user and --password it requires that login. It prints
"ready" once it listens, and runs until killed.
"""

import argparse
import json
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            record = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "data": envelope.content.decode("utf-8", "replace"),
                "tls": session.ssl is not None,
                "login": login_of(session.auth_data),
            }
            with open(args.out, "a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")
            return "250 Message accepted for delivery"

    def login_of(auth_data):
        if isinstance(auth_data, LoginPassword):
            return auth_data.login.decode("utf-8", "replace")
        return None

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == args.user
            and auth_data.password.decode() == args.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    options = {}
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        options.update(tls_context=context, require_starttls=True)
    if args.user:
        options.update(
            authenticator=authenticator, auth_required=True, auth_require_tls=bool(args.cert)
        )
    controller = Controller(Handler(), hostname="127.0.0.1", port=args.port, **options)
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
