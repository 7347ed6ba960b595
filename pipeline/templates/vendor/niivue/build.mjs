// Build niivue.js: NiiVue and its dependencies in one minified classic script (IIFE),
// inlined into each review page so that the page works offline under a strict CSP.
// numcodecs (Blosc/Zstd/LZ4 WebAssembly codecs of Zarr arrays, 1.4 MB) is replaced by
// an empty module: the review page loads NIfTI only, never Zarr.
import { readFileSync } from "node:fs";

import * as esbuild from "esbuild";

const version = JSON.parse(readFileSync("node_modules/@niivue/niivue/package.json", "utf8")).version;

const noZarrCodecs = {
  name: "no-zarr-codecs",
  setup(build) {
    build.onResolve({ filter: /^numcodecs(\/.*)?$/ }, (args) => ({ path: args.path, namespace: "stub" }));
    build.onLoad({ filter: /.*/, namespace: "stub" }, () => ({
      contents: "export default null;", loader: "js",
    }));
  },
};

await esbuild.build({
  entryPoints: ["entry.js"], bundle: true, minify: true, format: "iife", target: "es2020",
  outfile: "niivue.js", plugins: [noZarrCodecs], legalComments: "none",
  define: { NIIVUE_VERSION: JSON.stringify(version) },
  banner: { js: `/* NiiVue ${version} (BSD-2-Clause) and its dependencies, see LICENSES.txt; built by build.mjs */` },
});
