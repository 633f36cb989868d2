// Builds the web console into dist/console/ (index.html and assets/), which
// the server's HTTP listener serves. Run from the repository root:
// `vite build --config console/vite.config.ts` (npm run build does).
//
// The server's Content-Security-Policy allows scripts from 'self' only, so
// the build must have no inline script: the module-preload polyfill (an
// inline script) is off, and nothing is inlined as a data: URL.
import { defineConfig } from 'vite';

/** A path beside this file, as a file-system path. */
function here(relative: string): string {
  return decodeURIComponent(new URL(relative, import.meta.url).pathname);
}

export default defineConfig({
  root: here('.'),
  base: '/',
  publicDir: false,
  // Preact's automatic JSX runtime (Vite 8 transforms with Oxc).
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: here('../dist/console'),
    emptyOutDir: true,
    target: 'es2022',
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    chunkSizeWarningLimit: 2048,
  },
});
