// Makes the fixture tokens that aspjwt's tests verify, with Node's jsonwebtoken exactly as
// the CRM backend calls it: jwt.sign(payload, process.env.JWT_SECRET, options), where the
// HMAC key is the UTF-8 bytes of the secret string as written in .env.
//
//   npm ci --prefix tests/node && node tests/node/make-fixtures.js > tests/fixtures/node-tokens.json
//
// The secrets are test data made with `aspjwt generate`; they protect nothing.
const jwt = require('jsonwebtoken');

const JWT_SECRET = 'q2bjVwH9cO6z3pR0J4v7mG1tYx8sKdLfUeWnQhTaZiMkXyBcDoPrSgFuHlEjNwA5xv1m6Zt9qYp2Rk0bGcVdFh3sLo7uWeTiNaJyKgMzHxPB4w==';
const JWT_REFRESH_SECRET = 'Zx4Ck8Vb2Nm6Qw0Er5Ty9Ui3Op7As1Df4Gh8Jk2Lz6Xc0Vb5Nm9Qw3Er7Ty1Ui5Op9As3Df7Gh1Jk5Lz9Xc3Vb7Nm1Qw5Er9Ty3Ui7Op1As5Dg==';
const SESSION_SECRET = 'mT7pQ2xZ9vB4nK6wL1sD8fG3hJ5kR0yU2iO7aE4cV9b=';
const iss = 'aspjwt';
const aud = 'asp-cranes-crm';
const JAN_2026 = 1767225600; // 2026-01-01T00:00:00Z
const YEAR_2100 = 4102444800; // 2100-01-01T00:00:00Z

const user = { sub: '42', email: 'dispatch@aspcranes.example', role: 'operations_manager' };
const claims = (typ, extra = {}) => ({ ...user, typ, sid: 'sess-fixture-1', jti: 'jti-' + typ, iat: JAN_2026, ...extra });

const tokens = {
  // Valid until 2100: the shape the service issues, signed by Node.
  access: jwt.sign({ ...claims('access'), exp: YEAR_2100 }, JWT_SECRET, { issuer: iss, audience: aud }),
  refresh: jwt.sign({ ...claims('refresh'), exp: YEAR_2100 }, JWT_REFRESH_SECRET, { issuer: iss, audience: aud }),
  // The CRM's real lifetimes, so long expired.
  access_expired: jwt.sign(claims('access'), JWT_SECRET, { expiresIn: '15m', issuer: iss, audience: aud }),
  // Not valid before 2099.
  access_not_yet_valid: jwt.sign({ ...claims('access'), exp: YEAR_2100, nbf: YEAR_2100 - 86400 * 365 }, JWT_SECRET, { issuer: iss, audience: aud }),
  // Re-signed with HS512.
  access_hs512: jwt.sign({ ...claims('access'), exp: YEAR_2100 }, JWT_SECRET, { algorithm: 'HS512', issuer: iss, audience: aud }),
  // An access-typed token signed with the refresh secret.
  access_signed_with_refresh_secret: jwt.sign({ ...claims('access'), exp: YEAR_2100 }, JWT_REFRESH_SECRET, { issuer: iss, audience: aud }),
  // The Node backend's own minimal token: no iss/aud/typ.
  legacy_minimal: jwt.sign({ userId: '42', role: 'admin', iat: JAN_2026, exp: YEAR_2100 }, JWT_SECRET),
};

process.stdout.write(JSON.stringify({
  made_by: `jsonwebtoken ${require('jsonwebtoken/package.json').version}, node ${process.version}`,
  env: { JWT_SECRET, JWT_REFRESH_SECRET, SESSION_SECRET },
  tokens,
}, null, 2) + '\n');
