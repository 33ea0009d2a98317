// The contributions in package.json match the names in protocol/CONTRACT-NAMES.md.
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';

// out-test/test/unit/manifest.test.js -> vscode-extension/package.json
const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8'));

describe('package.json contributions', () => {
  const dbg = pkg.contributes.debuggers.find((d: { type: string }) => d.type === 'prodture');
  it('declares the prodture debugger with the contract launch attributes', () => {
    assert.ok(dbg);
    const props = Object.keys(dbg.configurationAttributes.launch.properties).sort();
    assert.deepStrictEqual(props, ['cwd', 'env', 'handler', 'justMyCode', 'python', 'replayMode', 'stopOnEntry', 'trace']);
    assert.deepStrictEqual(dbg.configurationAttributes.launch.required, ['trace']);
    assert.strictEqual(dbg.initialConfigurations[0].trace, '${file}');
    assert.ok(dbg.configurationSnippets.every((s: { body: { trace: string } }) => s.body.trace === '^"\\${file}"'));
  });
  it('contributes the commands the language server lenses invoke', () => {
    const cmds = pkg.contributes.commands.map((c: { command: string }) => c.command);
    for (const c of ['prodture.debugTrace', 'prodture.replayTrace', 'prodture.showTrace']) assert.ok(cmds.includes(c), c);
    const titles = pkg.contributes.commands.map((c: { category: string; title: string }) => `${c.category}: ${c.title}`);
    for (const t of ['Prodture: Debug Trace', 'Prodture: Replay Trace', 'Prodture: Show Trace']) assert.ok(titles.includes(t), t);
  });
  it('registers the trace viewer for *.prodtrace and the timeline in Run and Debug', () => {
    assert.strictEqual(pkg.contributes.customEditors[0].viewType, 'prodture.traceViewer');
    assert.strictEqual(pkg.contributes.customEditors[0].selector[0].filenamePattern, '*.prodtrace');
    assert.strictEqual(pkg.contributes.views.debug[0].id, 'prodture.timeline');
  });
  it('runs in Restricted Mode with limited support, never taking the interpreter from the folder', () => {
    const u = pkg.capabilities.untrustedWorkspaces;
    assert.strictEqual(u.supported, 'limited');
    assert.deepStrictEqual(u.restrictedConfigurations, ['prodture.python', 'prodture.store']);
    assert.match(u.description, /Replay, Debug, the trace-store and event-store commands and the language server's replay on save .* off/);
    assert.match(u.description, /Installing prodture .* off too/);
  });
  it('pins TypeScript 5 and bundles with esbuild', () => {
    assert.match(pkg.devDependencies.typescript, /^\^5\./);
    assert.ok(pkg.devDependencies.esbuild);
    assert.strictEqual(pkg.main, './dist/extension.js');
  });
});
