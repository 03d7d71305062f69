// A tiny OAuth 2.0 / OpenID Connect authorization server for tests, built on oidc-provider v9.
//
// It issues opaque access tokens with the client_credentials grant and the authorization code
// grant (with refresh tokens when a client has the refresh_token grant and asks for
// offline_access with prompt=consent), and answers RFC 7662 token introspection
// (POST /token/introspection) and RFC 7009 revocation. The demo CRM introspects the tokens it
// is given; connectors obtain them.
//
//   node server.mjs            (after `npm ci` in this folder)
//
// A client with the authorization_code grant turns on oidc-provider's development login and
// consent pages (any login name and password are accepted; the login name becomes the `sub`).
// Authorization requests must use PKCE (S256). People sign in with OpenID Connect too: the
// scopes openid, email and profile give the claims email, email_verified and name (from
// OIDC_ACCOUNTS), in the ID token itself as well as at userinfo, and RP-initiated logout
// (end_session_endpoint) returns to a client's registered post_logout_redirect_uris.
//
// Environment:
//   OIDC_HOST         address to listen on (default 127.0.0.1)
//   OIDC_PORT         port; 0 (the default) picks a free one
//   OIDC_CLIENTS      JSON array of client metadata replacing the default clients below; e.g. a
//                     web client signing people in: {"client_id", "client_secret",
//                     "grant_types": ["authorization_code"], "response_types": ["code"],
//                     "redirect_uris": [...], "post_logout_redirect_uris": [...]}
//   OIDC_ACCOUNTS     JSON object, login name -> claims, e.g. {"alice": {"email":
//                     "alice@example.com", "email_verified": true, "name": "Alice"}}; a login
//                     not listed has no claims but its sub
//   OIDC_TOKEN_TTL    access token lifetime in seconds (default 600)
//   OIDC_ROTATE_REFRESH_TOKENS  1: every refresh returns a new refresh token and consumes the
//                     old one (reusing it is invalid_grant); otherwise the default policy (a
//                     confidential client keeps its refresh token until late in its lifetime)
//   OIDC_ID_TOKEN_TTL ID token lifetime in seconds (default oidc-provider's, 3600)
//
// Once listening it prints one JSON line to stdout: {"issuer": "...", "port": N,
// "token_endpoint": "...", "introspection_endpoint": "...", "revocation_endpoint": "...",
// "authorization_endpoint": "...", "end_session_endpoint": "...", "jwks_uri": "..."}.
// SIGTERM or SIGINT stop it.

import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const host = process.env.OIDC_HOST || '127.0.0.1';
const port = Number(process.env.OIDC_PORT || 0);
const tokenTtl = Number(process.env.OIDC_TOKEN_TTL || 600);
const rotateRefreshTokens = process.env.OIDC_ROTATE_REFRESH_TOKENS === '1';
const idTokenTtl = process.env.OIDC_ID_TOKEN_TTL ? Number(process.env.OIDC_ID_TOKEN_TTL) : undefined;
const accounts = JSON.parse(process.env.OIDC_ACCOUNTS || '{}');

const defaultClients = [
  {
    // A connector calling the CRM on its own behalf.
    client_id: 'crm-connector',
    client_secret: 'crm-connector-secret',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'crm.read crm.write',
  },
  {
    // The demo CRM itself, a resource server that only introspects.
    client_id: 'demo-crm',
    client_secret: 'demo-crm-secret',
    grant_types: [],
    response_types: [],
    redirect_uris: [],
  },
];
const clients = process.env.OIDC_CLIENTS ? JSON.parse(process.env.OIDC_CLIENTS) : defaultClients;

// Anyone may sign in (the development login page takes any name): the login name is the sub,
// and OIDC_ACCOUNTS gives some of them claims. oidc-provider keeps only the claims the granted
// scopes and the `claims` configuration below allow.
async function findAccount(ctx, sub) {
  return {
    accountId: sub,
    async claims() {
      return { ...(Object.hasOwn(accounts, sub) ? accounts[sub] : {}), sub };
    },
  };
}

// A fresh signing key per run: tokens are opaque, the key only signs ID tokens.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256' };
// The login and consent pages for the authorization code grant, only when a client uses it.
const interactive = clients.some((client) => (client.grant_types || []).includes('authorization_code'));

const server = createServer();

server.listen(port, host, () => {
  const { port: actualPort } = server.address();
  const issuer = `http://${host}:${actualPort}`;
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [signingKey] },
    cookies: { keys: ['seedos-test-oidc-cookie-key'] },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'crm.read', 'crm.write'],
    findAccount,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    // The claims the scopes ask for go in the ID token too, so a relying party can read the
    // email from it without calling userinfo.
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: interactive },
      rpInitiatedLogout: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // Any confidential client may introspect any token (resource servers are clients too).
        allowedPolicy: async (ctx, client) => client.clientAuthMethod !== 'none',
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId,
      },
    },
    pkce: { required: () => true },
    ...(rotateRefreshTokens ? { rotateRefreshToken: () => true } : {}),
    ttl: {
      AccessToken: tokenTtl,
      ClientCredentials: tokenTtl,
      ...(idTokenTtl === undefined ? {} : { IdToken: idTokenTtl }),
    },
  });
  server.on('request', provider.callback());
  const endpoints = {
    issuer,
    port: actualPort,
    token_endpoint: `${issuer}/token`,
    introspection_endpoint: `${issuer}/token/introspection`,
    revocation_endpoint: `${issuer}/token/revocation`,
    authorization_endpoint: `${issuer}/auth`,
    end_session_endpoint: `${issuer}/session/end`,
    jwks_uri: `${issuer}/jwks`,
  };
  process.stdout.write(`${JSON.stringify(endpoints)}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
