-- Sensor kinds (DESIGN.md, "Signals that are not numbers"). Additive:
-- every existing sensor is `numeric`, with no states.
--
-- A `state` sensor declares its states (InfluxDB stores a reading's index
-- in this list), the other kinds none; only a numeric sensor has a valid
-- range. The checks repeat the application's rules.

ALTER TABLE metadata.sensors
    ADD COLUMN kind text NOT NULL DEFAULT 'numeric'
        CHECK (kind IN ('numeric', 'boolean', 'state')),
    ADD COLUMN states text[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(states) <= 256
               AND array_position(states, NULL) IS NULL);

ALTER TABLE metadata.sensors
    ADD CONSTRAINT sensors_states_per_kind
        CHECK ((kind = 'state') = (cardinality(states) > 0)),
    ADD CONSTRAINT sensors_range_only_numeric
        CHECK (kind = 'numeric' OR (min_value IS NULL AND max_value IS NULL));

-- A sensor's kind never changes and its states only grow at the end: the
-- readings InfluxDB holds are read back through them. The repository
-- refuses such changes with a precise error first; this is the backstop
-- for any other writer.
CREATE FUNCTION metadata.sensor_kind_is_kept() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind <> OLD.kind THEN
        RAISE EXCEPTION 'the kind of sensor % cannot change (% to %)', OLD.key, OLD.kind, NEW.kind
            USING ERRCODE = 'check_violation', CONSTRAINT = 'sensors_kind_kept';
    END IF;
    IF cardinality(NEW.states) < cardinality(OLD.states)
       OR NEW.states[1:cardinality(OLD.states)] IS DISTINCT FROM OLD.states THEN
        RAISE EXCEPTION 'the states of sensor % may only grow at the end', OLD.key
            USING ERRCODE = 'check_violation', CONSTRAINT = 'sensors_states_grow';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER sensors_kind_kept
    BEFORE UPDATE OF kind, states ON metadata.sensors
    FOR EACH ROW EXECUTE FUNCTION metadata.sensor_kind_is_kept();
