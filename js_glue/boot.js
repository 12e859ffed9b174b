// darkswap_wasm js_glue: boot the Python core in a page.
//
//   import { boot } from "<dist>/js_glue/boot.js";
//   const pyodide = await boot();                  // or boot({ baseUrl: "https://host/dist/" })
//   await pyodide.runPythonAsync("from darkswap_wasm import Network ...");
//
// Everything is found relative to this file's own URL (import.meta.url): it lives in
// <dist>/js_glue/, Pyodide in <dist>/pyodide/ and libsodium.js in <dist>/vendor/
// (scripts/build_dist.py --out dist --browser lays them out). Steps:
//   1. in parallel: import <dist>/pyodide/pyodide.mjs and load libsodium.js (crypto.js);
//   2. loadPyodide({ indexURL: <dist>/pyodide/ }): it reads the dist's own pyodide-lock.json,
//      which lists exactly the shipped wheels with their sha256;
//   3. pyodide.loadPackage(["darkswap-wasm", ...packages]) from that lock (no network beyond
//      the dist; any error is thrown, not logged and ignored);
//   4. in Python: set_backend(LibsodiumJsBackend(sodium));
//   5. ffi.js is registered as the Python module `darkswap_glue` (bulk data channel paths).
// Timings of the last boot are in `lastBoot` (milliseconds).

import { sodiumReady } from "./crypto.js";
import { batchMessages, sendSplit } from "./ffi.js";

const FFI_MODULE = "darkswap_glue"; // read by darkswap_wasm/transports/browser_ws.py

const DIST_ROOT = new URL("../", import.meta.url);
const PROJECT_PACKAGE = "darkswap-wasm";

// PyNaCl when the page's Pyodide distribution ships it (a full distribution), else the page's
// own build: libsodium.js. zstd needs nothing: Pyodide 314's standard library has compression.zstd.
const NATIVE_BACKEND_PACKAGES = ["pynacl"];

const INSTALL_BACKEND_PY = `
def install(sodium):
    from darkswap_wasm.crypto import get_backend, set_backend
    try:
        from darkswap_wasm.crypto.nacl_backend import NaclBackend
        set_backend(NaclBackend())
    except ImportError:
        from darkswap_wasm.crypto.libsodium_js import LibsodiumJsBackend
        set_backend(LibsodiumJsBackend(sodium))
    return repr(get_backend())

install
`;

async function nativeBackendPackages(indexURL) {
  try {
    const lock = await (await fetch(new URL("pyodide-lock.json", indexURL))).json();
    return NATIVE_BACKEND_PACKAGES.filter((name) => lock.packages && lock.packages[name]);
  } catch (e) {
    return [];
  }
}

/** Timings (ms) and versions of the last boot() in this page. */
export const lastBoot = {};

/**
 * Load Pyodide and the darkswap_wasm wheel from the dist, install the libsodium.js backend.
 * @param {object} [options]
 * @param {string|URL} [options.baseUrl] the dist root (default: the folder above js_glue/)
 * @param {string[]} [options.packages] further packages from the dist's lock (e.g. "pytest")
 * @param {object} [options.loadPyodideOptions] extra options for loadPyodide (stdout, stderr, ...)
 * @param {(msg: string) => void} [options.messageCallback] loadPackage progress messages
 * @returns {Promise<object>} the Pyodide instance, crypto backend installed
 */
export async function boot({ baseUrl = DIST_ROOT, packages = [], loadPyodideOptions = {}, messageCallback = () => {} } = {}) {
  const t0 = performance.now();
  let base = new URL(String(baseUrl), import.meta.url).href;
  if (!base.endsWith("/")) base += "/";
  const indexURL = new URL("pyodide/", base).href;

  const pyodideModuleUrl = new URL("pyodide.mjs", indexURL).href;
  const [pyodideModule, sodium] = await Promise.all([
    import(pyodideModuleUrl).catch((e) => {
      throw new Error(`js_glue/boot.js: cannot import ${pyodideModuleUrl} (${e && e.message ? e.message : e}); ` +
        "build the dist with: python scripts/build_dist.py --out dist --browser");
    }),
    sodiumReady(),
  ]);
  const tImports = performance.now();

  const pyodide = await pyodideModule.loadPyodide({ indexURL, ...loadPyodideOptions });
  const tPyodide = performance.now();

  const errors = [];
  const native = await nativeBackendPackages(indexURL);
  await pyodide.loadPackage([PROJECT_PACKAGE, ...native, ...packages], {
    messageCallback,
    errorCallback: (m) => errors.push(m),
  });
  if (errors.length) {
    throw new Error(`js_glue/boot.js: loading ${[PROJECT_PACKAGE, ...packages].join(", ")} from ${indexURL}pyodide-lock.json failed: ${errors.join("; ")}`);
  }
  const tPackages = performance.now();

  pyodide.registerJsModule(FFI_MODULE, { batchMessages, sendSplit });

  const ns = pyodide.toPy({});
  let install;
  let backend;
  try {
    install = pyodide.runPython(INSTALL_BACKEND_PY, { globals: ns });
    backend = install(sodium);
  } finally {
    if (install) install.destroy();
    ns.destroy();
  }
  const tEnd = performance.now();

  Object.assign(lastBoot, {
    baseUrl: base,
    nativeBackendPackages: native,
    pyodideVersion: pyodide.version,
    sodiumVersion: sodium.sodium_version_string(),
    backend,
    importsMs: tImports - t0,
    loadPyodideMs: tPyodide - tImports,
    loadPackagesMs: tPackages - tPyodide,
    installBackendMs: tEnd - tPackages,
    totalMs: tEnd - t0,
  });
  return pyodide;
}
