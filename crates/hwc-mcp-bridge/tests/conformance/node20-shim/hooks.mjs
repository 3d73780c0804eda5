// Module-resolve hook (see register.mjs): `fs` / `node:fs` imported by the
// conformance package resolve to fs-shim.mjs; everything else is untouched.
export async function resolve(specifier, context, next) {
  if ((specifier === 'fs' || specifier === 'node:fs') && context.parentURL && context.parentURL.includes('@modelcontextprotocol/conformance/')) {
    return { url: new URL('./fs-shim.mjs', import.meta.url).href, shortCircuit: true };
  }
  return next(specifier, context);
}
