// Node 20 shim for npm @modelcontextprotocol/conformance (0.1.x and 0.2.x).
// The suite imports `globSync` from `fs`, which exists only from Node 22;
// Node 20 is what Debian 12 and 13 ship, so without this the suite dies at
// import time ("fs does not provide an export named globSync"). Load with
// `node --import <this dir>/register.mjs <conformance>/dist/index.js ...`:
// hooks.mjs resolves `fs` to fs-shim.mjs for the suite's own modules only.
// The server scenarios never call globSync; the stub throws if one does.
import { register } from 'node:module';
register('./hooks.mjs', import.meta.url);
