-- Secrets: values encrypted with WEFT_SECRET_KEY (Fernet tokens); never stored in clear.
CREATE TABLE secrets (
    name       text PRIMARY KEY CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,63}$'),
    value      bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
