// Prints what Node's dotenv (the CRM backend's .env loader) reads from each file
// named on the command line: a JSON object of file name -> { KEY: value }.
const fs = require('fs');
const path = require('path');
const dotenv = require('dotenv');

const out = {};
for (const file of process.argv.slice(2)) {
  out[path.basename(file)] = dotenv.parse(fs.readFileSync(file));
}
process.stdout.write(JSON.stringify(out));
