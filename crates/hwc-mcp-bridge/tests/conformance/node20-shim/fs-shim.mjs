// Node's fs plus the `globSync` export Node 20 lacks (see register.mjs).
export * from 'node:fs';
import fs from 'node:fs';
export default fs;
export function globSync() { throw new Error('fs.globSync needs Node >= 22'); }
