// darkswap_wasm js_glue: zstd in the page (@bokuweb/zstd-wasm 0.0.27, zstd 1.5.x compiled to wasm).
//
//   import { zstdReady } from "./zstd.js";
//   const zstd = await zstdReady();          // loaded once per page
//   zstd.compress(u8, 3); zstd.decompress(frame, maxOutput);   // one-shot frames
//   // darkswap_wasm/compression/zstd_js.py drives the low-level calls below from Python.
//
// The package's web build lives in <dist>/vendor/@bokuweb/zstd-wasm/ (build_dist rewrote its
// extensionless imports); it is found relative to this file's URL. The wasm is fetched here (not
// by the package, whose failure path aborts without rejecting anything) and handed to
// Module.init() as bytes.
//
// What the wasm exports (and so all this can do): ZSTD_compress, ZSTD_compress_usingDict,
// ZSTD_decompress, ZSTD_decompress_usingDict, ZSTD_createCCtx/DCtx, ZSTD_freeCCtx/DCtx,
// ZSTD_compressBound, ZSTD_getFrameContentSize, ZSTD_isError, malloc, free. No streaming entry
// point (ZSTD_compressStream2, ZSTD_decompressStream, ZSTD_CCtx_setParameter are not exported,
// and the build is -flto, so they are not in the module at all). zstd_js.py builds the streaming
// contexts the messaging protocol needs out of the one-shot calls with dictionaries (see there).

import { Module, waitInitialized } from "../vendor/@bokuweb/zstd-wasm/module.js";

const WASM_URL = new URL("../vendor/@bokuweb/zstd-wasm/zstd.wasm", import.meta.url);
const INIT_TIMEOUT_MS = 30000;

let pending = null;

function api() {
  const M = Module;
  const heap = () => M.HEAPU8; // re-read after every call that may grow memory
  const isError = (ret) => M._ZSTD_isError(ret) !== 0;
  const errorCode = (ret) => (isError(ret) ? -(ret | 0) : 0);
  const check = (ret, what) => {
    if (isError(ret)) {
      const e = new Error(`zstd: ${what} failed (ZSTD error ${errorCode(ret)})`);
      e.zstdError = errorCode(ret);
      throw e;
    }
    return ret >>> 0;
  };
  const malloc = (n) => {
    const p = M._malloc(Math.max(1, n));
    if (!p) throw new Error(`zstd: malloc(${n}) failed (wasm memory exhausted)`);
    return p;
  };
  return {
    Module: M,
    // -------- one-shot frames (what the package itself offers, with checked errors) --------
    compress(u8, level = 3) {
      const cap = M._ZSTD_compressBound(u8.byteLength) >>> 0;
      const src = malloc(u8.byteLength);
      const dst = malloc(cap);
      try {
        heap().set(u8, src);
        const n = check(M._ZSTD_compress(dst, cap, src, u8.byteLength, level), "ZSTD_compress");
        return heap().slice(dst, dst + n);
      } finally {
        M._free(src);
        M._free(dst);
      }
    },
    /** One or more whole frames; at most maxOutput bytes out (else an Error with zstdError 70). */
    decompress(u8, maxOutput) {
      const src = malloc(u8.byteLength);
      const dst = malloc(maxOutput);
      try {
        heap().set(u8, src);
        const n = check(M._ZSTD_decompress(dst, maxOutput, src, u8.byteLength), "ZSTD_decompress");
        return heap().slice(dst, dst + n);
      } finally {
        M._free(src);
        M._free(dst);
      }
    },
    // -------- low level, for zstd_js.py (pointers are offsets into the wasm memory) --------
    malloc,
    free: (p) => M._free(p),
    compressBound: (n) => M._ZSTD_compressBound(n) >>> 0,
    createCCtx: () => M._ZSTD_createCCtx(),
    freeCCtx: (p) => M._ZSTD_freeCCtx(p),
    createDCtx: () => M._ZSTD_createDCtx(),
    freeDCtx: (p) => M._ZSTD_freeDCtx(p),
    /** ZSTD_compress_usingDict: the frame size, or -code for a zstd error. */
    compressUsingDict: (cctx, dst, cap, src, n, dict, dictSize, level) => {
      const r = M._ZSTD_compress_usingDict(cctx, dst, cap, src, n, dict, dictSize, level);
      return isError(r) ? -errorCode(r) : r >>> 0;
    },
    /** ZSTD_decompress_usingDict: the output size, or -code for a zstd error. */
    decompressUsingDict: (dctx, dst, cap, src, n, dict, dictSize) => {
      const r = M._ZSTD_decompress_usingDict(dctx, dst, cap, src, n, dict, dictSize);
      return isError(r) ? -errorCode(r) : r >>> 0;
    },
    write: (ptr, u8) => heap().set(u8, ptr),
    read: (ptr, n) => heap().slice(ptr, ptr + n),
    fill: (ptr, n, value) => heap().fill(value, ptr, ptr + n),
    move: (dst, src, n) => heap().copyWithin(dst, src, src + n),
    equal: (a, b, n) => {
      const h = heap();
      for (let i = 0; i < n; i++) if (h[a + i] !== h[b + i]) return false;
      return true;
    },
    u32: (ptr) => {
      const h = heap();
      return (h[ptr] | (h[ptr + 1] << 8) | (h[ptr + 2] << 16) | (h[ptr + 3] << 24)) >>> 0;
    },
    /** Offsets (from ptr) of every occurrence of `needle` (Uint8Array) in heap[ptr, ptr+n). */
    find: (ptr, n, needle) => {
      const h = heap();
      const out = [];
      outer: for (let i = 0; i + needle.length <= n; i++) {
        for (let j = 0; j < needle.length; j++) if (h[ptr + i + j] !== needle[j]) continue outer;
        out.push(i);
      }
      return out;
    },
  };
}

/**
 * Load the wasm once per page; resolves to the API above.
 * @param {object} [options]
 * @param {string|URL} [options.url] the zstd.wasm to fetch (default: the vendored one)
 * @param {ArrayBuffer|Uint8Array} [options.wasmBinary] the wasm bytes (node: no fetch of file://)
 */
export function zstdReady({ url = WASM_URL, wasmBinary = null } = {}) {
  if (pending === null) {
    pending = (async () => {
      let bytes = wasmBinary;
      if (bytes === null) {
        let resp;
        try {
          resp = await fetch(String(url), { credentials: "same-origin" });
        } catch (e) {
          throw new Error(`js_glue/zstd.js: cannot fetch ${url} (${e && e.message ? e.message : e})`);
        }
        if (!resp.ok) throw new Error(`js_glue/zstd.js: ${url}: HTTP ${resp.status}`);
        bytes = await resp.arrayBuffer();
      }
      if (!WebAssembly.validate(bytes)) throw new Error(`js_glue/zstd.js: ${url} is not valid WebAssembly`);
      Module.init(bytes);
      let timer;
      try {
        await Promise.race([
          waitInitialized(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error("js_glue/zstd.js: the zstd wasm did not initialize")), INIT_TIMEOUT_MS);
          }),
        ]);
      } finally {
        clearTimeout(timer);
      }
      const zstd = api();
      // a self-check: a frame made here decodes back
      const probe = new TextEncoder().encode("darkswap ".repeat(64));
      const back = zstd.decompress(zstd.compress(probe, 3), probe.length);
      if (back.length !== probe.length || !back.every((b, i) => b === probe[i])) {
        throw new Error("js_glue/zstd.js: the zstd wasm does not round-trip");
      }
      return zstd;
    })();
    pending.catch(() => {
      pending = null;
    });
  }
  return pending;
}
