-- A WebSocket ticket of a bearer-JWT caller stands for what the token was found to be, not for
-- a hash the database could look up: b'J' || a short JSON array (issuer name, subject, exp,
-- tenant id, role), so that any gateway replica can judge the socket again until the token
-- expires (gateway/auth/jwt_callers.py). API keys' and sessions' stay b'k'/b's' || SHA-256.
ALTER TABLE public.ws_tickets DROP CONSTRAINT IF EXISTS ws_tickets_credential_check;
ALTER TABLE public.ws_tickets ADD CONSTRAINT ws_tickets_credential_check CHECK (
    length(credential) = 33 OR (get_byte(credential, 0) = 74 AND length(credential) <= 1024)
);
