// darkswap.mjs — the ES-module entry point of the DarkSwap JS API (same API as darkswap.js).
//
//   import { DarkSwapWasm } from "./dist/darkswap.mjs";
//   const darkswap = await DarkSwapWasm.new_with_defaults("regtest", { relays: [relayAddr] });
//
// darkswap.js holds the implementation; evaluated as a module it defines no globals except its
// factory, which this file calls with import.meta.url so that Pyodide, the wheels and js_glue/
// are found next to this file.

import "./darkswap.js";

const api = globalThis.__darkswapFactory(import.meta.url);

export const DarkSwapWasm = api.DarkSwapWasm;
export const DarkSwapError = api.DarkSwapError;
export default DarkSwapWasm;
