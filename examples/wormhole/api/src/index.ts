import type { AddressInfo } from "node:net";
import { buildVersion, parsePort, startServer } from "./server.js";

const port = parsePort(process.env.PORT);
const server = await startServer(port);
const { port: boundPort } = server.address() as AddressInfo;
console.log(`wormhole-api ${buildVersion()} listening on :${boundPort}`);

const shutdown = (signal: NodeJS.Signals): void => {
  console.log(`received ${signal}, shutting down`);
  server.close((err) => {
    if (err) {
      console.error(err);
      process.exitCode = 1;
    }
  });
  server.closeIdleConnections();
};
process.once("SIGTERM", shutdown);
process.once("SIGINT", shutdown);
