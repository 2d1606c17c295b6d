// Hashes passwords with Node's bcryptjs, as the CRM's backend stored them, for the
// import tests: argv[2] is a JSON array of {password, cost, minor: "a"|"b"}; prints a
// JSON array of hashes.
'use strict';
const bcrypt = require('bcryptjs');

const specs = JSON.parse(process.argv[2]);
const hashes = specs.map(({ password, cost, minor }) => {
  // bcryptjs writes $2b$; a $2a$ salt (what older bcryptjs and bcrypt wrote) hashes alike.
  const salt = bcrypt.genSaltSync(cost).replace(/^\$2b\$/, `$2${minor}$`);
  return bcrypt.hashSync(password, salt);
});
console.log(JSON.stringify(hashes));
