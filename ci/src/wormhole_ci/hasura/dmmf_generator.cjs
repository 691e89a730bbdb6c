// A minimal Prisma generator (the generator-helper JSON-RPC protocol over stdin/stderr):
// it answers getManifest and, on generate, writes Prisma's full parsed datamodel (DMMF)
// to $WORMHOLE_CI_DMMF_OUT. wormhole-ci uses it to read the schema without a database.
"use strict";
const fs = require("node:fs");
const readline = require("node:readline");

const reply = (id, result) => process.stderr.write(JSON.stringify({ jsonrpc: "2.0", id, result }) + "\n");
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const message = JSON.parse(line);
  if (message.method === "getManifest") {
    reply(message.id, { manifest: { prettyName: "wormhole-ci DMMF", defaultOutput: ".", requiresGenerators: [] } });
  } else if (message.method === "generate") {
    fs.writeFileSync(process.env.WORMHOLE_CI_DMMF_OUT, JSON.stringify(message.params.dmmf.datamodel));
    reply(message.id, null);
  }
});
