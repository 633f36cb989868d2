// Builds the Go tools into .cache/bin, at pinned versions, from the Go
// module proxy: grpcurl and grpc-health-probe for the tests
// (test/integration/ecosystem.test.ts), protoc-gen-go and protoc-gen-go-grpc
// for `npm run gen` (buf.gen.yaml). Skips tools already built at that
// version. Without Go it says so; the suites that need them then fail
// naming this script.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = join(root, '.cache', 'bin');

export const TOOLS = {
  grpcurl: 'github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3',
  'grpc-health-probe': 'github.com/grpc-ecosystem/grpc-health-probe@v0.4.62',
  'protoc-gen-go': 'google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.10',
  'protoc-gen-go-grpc': 'google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1',
};

if (spawnSync('go', ['version']).status !== 0) {
  console.warn('tools: Go is not installed; grpcurl, grpc-health-probe and the Go SDK generator are unavailable');
  process.exit(0);
}
mkdirSync(bin, { recursive: true });
for (const [name, module] of Object.entries(TOOLS)) {
  const stamp = join(bin, `${name}.version`);
  if (existsSync(join(bin, name)) && existsSync(stamp) && readFileSync(stamp, 'utf8') === module) continue;
  console.log(`tools: go install ${module}`);
  execFileSync('go', ['install', module], { stdio: 'inherit', env: { ...process.env, GOBIN: bin } });
  writeFileSync(stamp, module);
}
