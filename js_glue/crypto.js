// darkswap_wasm js_glue: the in-page crypto library (libsodium.js).
//
//   import { sodiumReady } from "./crypto.js";
//   const sodium = await sodiumReady();   // libsodium-wrappers' default export, ready to use
//
// Loads <dist>/vendor/libsodium-wrappers/libsodium-wrappers.mjs, found relative to this file's own
// URL (this file lives in <dist>/js_glue/). scripts/build_dist.py --browser puts it there, pinned,
// with its bare `import "libsodium"` rewritten to "../libsodium/libsodium.mjs", so no import map
// and no bundler is needed. libsodium.mjs carries its WebAssembly inline (no extra fetch).

const WRAPPERS_URL = new URL("../vendor/libsodium-wrappers/libsodium-wrappers.mjs", import.meta.url);

let pending = null;

/** Resolve to libsodium-wrappers' `sodium` object after `sodium.ready`; loads it once per page. */
export function sodiumReady({ url = WRAPPERS_URL } = {}) {
  if (pending === null) {
    pending = (async () => {
      let mod;
      try {
        mod = await import(String(url));
      } catch (e) {
        throw new Error(
          `js_glue/crypto.js: cannot load libsodium-wrappers from ${url} (${e && e.message ? e.message : e}); ` +
            "build the dist with: python scripts/build_dist.py --out dist --browser",
        );
      }
      const sodium = mod.default ?? mod;
      await sodium.ready;
      if (typeof sodium.crypto_aead_chacha20poly1305_ietf_encrypt !== "function") {
        throw new Error("js_glue/crypto.js: libsodium-wrappers loaded but lacks its functions after `ready`");
      }
      return sodium;
    })();
    pending.catch(() => {
      pending = null; // a later call may retry
    });
  }
  return pending;
}
