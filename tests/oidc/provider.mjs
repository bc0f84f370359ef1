// A real OpenID Connect provider (panva/oidc-provider, OpenID Certified) on loopback, for nauth's
// social-login tests. Started by `nauth_testkit::oidc::provider()`; prints one JSON line
// `{"issuer": "http://127.0.0.1:PORT"}` when it listens, and exits when its stdin closes (the
// test process ended).
//
// Test accounts are named by the `login_hint` of the authorization request, and the login and
// consent steps finish at once for that account (no HTML form to fill in):
//   alice@example.com           sub "sub-alice@example.com", email verified
//   unverified:bob@example.com  sub "sub-bob@example.com", email_verified false
//   noemail:carol               sub "sub-carol", no email claim
// A request without `login_hint` signs in as `$OIDC_DEFAULT_LOGIN_HINT` when set (the browser
// suite, whose clicks cannot add one).
// Clients: "nauth-test" / "nauth-test-secret" and "other-client" / "other-secret"; any redirect
// URI on http://127.0.0.1 or http://localhost is accepted. PKCE (S256) is required.
import http from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

function claimsFor(hint) {
  const given_name = 'Test';
  const family_name = 'User';
  if (hint.startsWith('noemail:')) {
    return { sub: `sub-${hint.slice(8)}`, given_name, family_name };
  }
  const unverified = hint.startsWith('unverified:');
  const email = unverified ? hint.slice(11) : hint;
  return { sub: `sub-${email}`, email, email_verified: !unverified, given_name, family_name };
}

function loopback(uri) {
  try {
    const u = new URL(uri);
    return u.protocol === 'http:' && (u.hostname === '127.0.0.1' || u.hostname === 'localhost');
  } catch {
    return false;
  }
}

// The provider names an account by its `sub`; the hint it was last signed in with gives its claims.
const accounts = new Map();

const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 })
  .privateKey.export({ format: 'jwk' });

const client = (client_id, client_secret) => ({
  client_id,
  client_secret,
  redirect_uris: ['http://127.0.0.1/callback'],
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
});

const configuration = {
  clients: [client('nauth-test', 'nauth-test-secret'), client('other-client', 'other-secret')],
  jwks: { keys: [{ ...signingKey, kid: 'test-key-1', use: 'sig', alg: 'RS256' }] },
  cookies: { keys: ['nauth-oidc-test-cookie-key'] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['given_name', 'family_name'],
  },
  // The scope's claims go into the ID token too, as Google and Microsoft do.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(_ctx, sub) {
    const hint = accounts.get(sub);
    return hint === undefined ? undefined : { accountId: sub, claims: async () => claimsFor(hint) };
  },
};

const server = http.createServer();
server.listen(Number(process.env.OIDC_PORT || 0), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration);
  provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(uri) {
    return loopback(uri);
  };
  const callback = provider.callback();

  server.on('request', async (req, res) => {
    if (!req.url.startsWith('/interaction/')) {
      callback(req, res);
      return;
    }
    try {
      const details = await provider.interactionDetails(req, res);
      const hint = details.params.login_hint || process.env.OIDC_DEFAULT_LOGIN_HINT;
      if (!hint) {
        res.writeHead(400, { 'content-type': 'text/plain' });
        res.end('login_hint names the test account');
        return;
      }
      const { sub } = claimsFor(hint);
      accounts.set(sub, hint);
      const grant = new provider.Grant({ accountId: sub, clientId: details.params.client_id });
      grant.addOIDCScope(details.params.scope);
      const grantId = await grant.save();
      await provider.interactionFinished(
        req,
        res,
        { login: { accountId: sub }, consent: { grantId } },
        { mergeWithLastSubmission: false },
      );
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(err));
    }
  });
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
