// Verifies a token from stdin exactly as the CRM backend does:
// jwt.verify(token, process.env[SECRET_VAR], { algorithms: ['HS256'], issuer, audience }).
// Prints the claims as JSON and exits 0, or prints the error and exits 1.
const jwt = require('jsonwebtoken');
const token = require('fs').readFileSync(0, 'utf8').trim();
const secret = process.env[process.env.SECRET_VAR || 'JWT_SECRET'];
try {
  const claims = jwt.verify(token, secret, { algorithms: ['HS256'], issuer: 'aspjwt', audience: 'asp-cranes-crm' });
  process.stdout.write(JSON.stringify(claims) + '\n');
} catch (e) {
  process.stdout.write(`${e.name}: ${e.message}\n`);
  process.exit(1);
}
