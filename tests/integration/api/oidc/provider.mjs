// A real OpenID Connect provider (npm `oidc-provider`) for the OIDC login tests.
// usage: node provider.mjs PORT REDIRECT_URI CLIENT_SECRET
import Provider from 'oidc-provider';

const [port, redirectUri, clientSecret] = process.argv.slice(2);
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'aggregator',
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  // The dev login form accepts any login: the account id is the email typed in.
  findAccount: async (ctx, id) => ({
    accountId: id,
    async claims() { return { sub: id, email: id, email_verified: !id.startsWith('unverified') }; },
  }),
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  cookies: { keys: ['test-cookie-key'] },
});
provider.proxy = false;
provider.listen(Number(port), '127.0.0.1', () => console.log('listening'));
