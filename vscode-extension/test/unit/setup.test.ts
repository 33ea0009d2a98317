import * as assert from 'assert';
import {
  InterpreterProblem,
  InterpreterProblemError,
  PROBE_GIVE_UP_MS,
  PUBLISHED_REQUIREMENT,
  findProdtureProject,
  installArgs,
  installCommandLine,
  installSource,
  isProdtureProject,
  probeDelayMs,
  setupView,
} from '../../src/lib/setup';

const PRODTURE_PYPROJECT = '[build-system]\nrequires = ["hatchling"]\nname = "not-this"\n\n[project]\nname = "prodture"\nversion = "0.1.0"\n';
const SERVICE_PYPROJECT = '[project]\nname = "checkout-example"\ndependencies = ["prodture"]\n';

describe('isProdtureProject', () => {
  it('reads the [project] name, not a name in another table', () => {
    assert.strictEqual(isProdtureProject(PRODTURE_PYPROJECT), true);
    assert.strictEqual(isProdtureProject(SERVICE_PYPROJECT), false);
    assert.strictEqual(isProdtureProject('[tool.x]\nname = "prodture"\n'), false);
    assert.strictEqual(isProdtureProject("[project]\nname = 'Prodture'\n"), true);
    assert.strictEqual(isProdtureProject(''), false);
  });
});

describe('findProdtureProject', () => {
  const files: Record<string, string> = {
    '/repo/pyproject.toml': PRODTURE_PYPROJECT,
    '/repo/examples/checkout/pyproject.toml': SERVICE_PYPROJECT,
    '/elsewhere/svc/pyproject.toml': SERVICE_PYPROJECT,
  };
  const read = (f: string) => files[f];
  it('finds the prodture checkout that holds an example folder (walking up past its pyproject)', () => {
    assert.strictEqual(findProdtureProject(['/repo/examples/checkout'], read), '/repo');
    assert.strictEqual(findProdtureProject(['/repo/'], read), '/repo');
  });
  it('finds none for a service outside a prodture checkout', () => {
    assert.strictEqual(findProdtureProject(['/elsewhere/svc'], read), undefined);
    assert.strictEqual(findProdtureProject([], read), undefined);
  });
  it('looks at every workspace folder in order', () => {
    assert.strictEqual(findProdtureProject(['/elsewhere/svc', '/repo/examples/checkout'], read), '/repo');
  });
  it('walks Windows paths up to the drive', () => {
    const win: Record<string, string> = { 'C:\\src\\prodture\\pyproject.toml': PRODTURE_PYPROJECT };
    assert.strictEqual(
      findProdtureProject(['C:\\src\\prodture\\examples\\poker'], (f) => win[f]),
      'C:\\src\\prodture',
    );
    assert.strictEqual(findProdtureProject(['C:\\other'], (f) => win[f]), undefined);
  });
});

describe('install source and command', () => {
  it('installs the open prodture project editable, with the debug extras', () => {
    const s = installSource('/repo');
    assert.deepStrictEqual(installArgs(s), ['-m', 'pip', 'install', '-e', '/repo[debug]']);
    assert.strictEqual(installCommandLine('/v/bin/python', s), "/v/bin/python -m pip install -e '/repo[debug]'");
    assert.match(s.label, /project at \/repo/);
  });
  it('falls back to the published package', () => {
    const s = installSource(undefined);
    assert.deepStrictEqual(installArgs(s), ['-m', 'pip', 'install', PUBLISHED_REQUIREMENT]);
    assert.strictEqual(installCommandLine('/My Envs/py', s), "'/My Envs/py' -m pip install 'prodture[debug]'");
  });
});

describe('setupView (the panel the viewer shows on first run)', () => {
  const notInstalled: InterpreterProblem = { kind: 'not-installed', python: '/tmp/fresh/bin/python', source: 'setting', message: 'prodture is not installed in /tmp/fresh/bin/python' };
  const source = installSource('/repo');
  it('names the interpreter, how it was chosen, what it lacks, and offers install and choose', () => {
    const v = setupView(notInstalled, source, true, false);
    assert.match(v.title, /prodture is not installed/);
    assert.match(v.lines[0], /\/tmp\/fresh\/bin\/python — from the prodture\.python setting/);
    assert.ok(v.lines.some((l) => /no need to reopen/.test(l)));
    assert.strictEqual(v.installLabel, 'Install prodture into /tmp/fresh/bin/python');
    assert.strictEqual(v.command, "/tmp/fresh/bin/python -m pip install -e '/repo[debug]'");
    assert.strictEqual(v.installOff, null);
    assert.strictEqual(v.chooseLabel, 'Choose another interpreter…');
  });
  it('in Restricted Mode the install is off with a one-line reason; choosing stays on', () => {
    const v = setupView(notInstalled, source, false, false);
    assert.ok(v.installOff);
    assert.ok(!v.installOff.includes('\n'));
    assert.match(v.installOff, /^Installing prodture is off in Restricted Mode: this folder is not trusted/);
    assert.match(v.installOff, /Manage Workspace Trust/);
  });
  it('an interpreter that cannot start cannot be installed into', () => {
    const v = setupView({ ...notInstalled, kind: 'not-found' }, source, true, false);
    assert.match(v.title, /could not be started/);
    assert.match(v.installOff ?? '', /choose another interpreter/);
  });
  it('an interpreter inside the untrusted folder is refused, install off', () => {
    const v = setupView({ ...notInstalled, kind: 'untrusted-location', source: 'python-extension' }, source, false, false);
    assert.match(v.title, /inside this untrusted folder/);
    assert.match(v.lines[0], /Python extension's selected interpreter/);
    assert.ok(v.installOff);
  });
  it('says when an install is running', () => {
    assert.strictEqual(setupView(notInstalled, source, true, true).installing, true);
  });
  it('the error carries the problem for the viewer', () => {
    const e = new InterpreterProblemError(notInstalled);
    assert.ok(e instanceof Error);
    assert.strictEqual(e.message, notInstalled.message);
    assert.strictEqual(e.problem.python, '/tmp/fresh/bin/python');
  });
});

describe('probeDelayMs (looking again while an install runs)', () => {
  it('backs off from 1 s, doubling, to a 15 s ceiling', () => {
    assert.deepStrictEqual([0, 1, 2, 3, 4, 5, 50].map(probeDelayMs), [1000, 2000, 4000, 8000, 15000, 15000, 15000]);
  });
  it('gives up after minutes, not seconds', () => {
    assert.ok(PROBE_GIVE_UP_MS >= 5 * 60_000);
  });
});
