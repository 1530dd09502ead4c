/**
 * `uvimage init [dir]`: appends a commented [tool.uvimage] table to pyproject.toml, fitted to
 * what the project is: a FastAPI app (`fastapi run` on it, as the recipe runs it), a Django site
 * (gunicorn on its WSGI module, with the source tree), a Flask app (gunicorn when the project
 * depends on it, else Flask's own server), a project with one console script (that script),
 * else `python`. The web apps get their port in `expose`. An existing table is never touched.
 *
 * What the project is comes from pyproject.toml (dependencies, console scripts, whether uv
 * installs it as a package) and from reading its Python files for the app object (`app =
 * FastAPI(...)`, `Flask(__name__)`, Django's `get_wsgi_application()`). Choosing (planInit) is
 * pure; the table it writes is checked against the [tool.uvimage] schema before the file is
 * replaced (temp file + rename).
 */
import { readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { Command } from 'commander';
import { parseToolUvimage, toolUvimageSchema } from '../../config/schema.js';
import { UserError } from '../../errors.js';
import { normalizeName } from '../../python/markers.js';
import { isPackage, parseToml, readPyProject, type PyProject } from '../../python/pyproject.js';
import { parseRequirement } from '../../python/requirement.js';

/** A Python file of the project: its path relative to the project, '/'-separated, and its text. */
export interface SourceFile {
  path: string;
  text: string;
}

/** What planInit needs to know about a project. */
export interface InitInput {
  name: string;
  /** Normalized names of [project] dependencies. */
  dependencies: Set<string>;
  scripts: string[];
  /** Whether uv builds and installs the project (else only its dependencies are, and the code is the source tree). */
  installed: boolean;
  files: SourceFile[];
}

export interface InitPlan {
  /** What the project was taken for, for the summary line: 'FastAPI app fastapi_hello'. */
  shape: string;
  /** The table's lines (comments included), from `[tool.uvimage]` on. */
  lines: string[];
}

/** The key issue 11 adds for shipping the source tree; written live once the schema has it. */
const sourceKeyKnown = 'source' in toolUvimageSchema.shape;

export function planInit(input: InitInput): InitPlan {
  const header = [
    '[tool.uvimage]',
    `# Written by \`uvimage init\`. Every key: \`uvimage config-schema\`; a flag of \`uvimage build\` overrides each.`,
    `# repository = "registry.example.com/${input.name}"   # where --push sends the tags`,
    '# tags = ["latest"]',
    '# platforms = ["linux/amd64", "linux/arm64"]',
  ];
  const body = fastapiApp(input) ?? djangoSite(input) ?? flaskApp(input) ?? consoleScript(input) ?? plainPython(input);
  return { shape: body.shape, lines: [...header, ...body.lines] };
}

type Body = InitPlan;

const quote = (items: string[]): string => `[${items.map((item) => JSON.stringify(item)).join(', ')}]`;

/** The lines that put the source tree at /app (the working directory) where the code is not installed. */
function sourceTree(why: string): string[] {
  return sourceKeyKnown
    ? [`# ${why}`, 'source = true']
    : [`# ${why} (the \`source\` key comes with a later uvimage; until then the app must be an installed package)`, '# source = true'];
}

/** `app = FastAPI(...)` in some file: `fastapi run` on it, port 8000 (fastapi run's default). */
function fastapiApp(input: InitInput): Body | undefined {
  if (!input.dependencies.has('fastapi')) return undefined;
  const found = findAssignment(input.files, /^(\w+)\s*(?::[^=\n]+)?=\s*(?:fastapi\.)?FastAPI\(/m);
  if (!found) return undefined;
  const { file, variable } = found;
  const module = moduleOf(file.path);
  // fastapi run takes the path of a file or of a package (its __init__.py), and finds `app` in it.
  const target = file.path.endsWith('/__init__.py') ? file.path.slice(0, -'/__init__.py'.length) : file.path;
  const path = input.installed ? `{site-packages}/${importPath(target)}` : `/app/${target}`;
  const cmd = ['fastapi', 'run', '--host', '0.0.0.0', '--port', '8000', ...(variable === 'app' ? [] : ['--app', variable]), path];
  return {
    shape: `FastAPI app ${module}:${variable}`,
    lines: [
      ...(input.installed ? [] : sourceTree('The project is not a package: its files go into the image as the source tree at /app.')),
      input.installed
        ? '# As the recipe runs it: `fastapi run` on the installed package ({site-packages} is the virtualenv\'s site-packages).'
        : '# As the recipe runs it: `fastapi run` on the app in the source tree.',
      `cmd = ${quote(cmd)}`,
      'expose = [8000]',
    ],
  };
}

/** A wsgi.py with get_wsgi_application(): gunicorn on it from the source tree, port 8000. */
function djangoSite(input: InitInput): Body | undefined {
  if (!input.dependencies.has('django')) return undefined;
  const wsgi = input.files.filter((file) => /(^|\/)wsgi\.py$/.test(file.path) && /get_wsgi_application\s*\(/.test(file.text)).sort(byDepth)[0];
  if (!wsgi) return undefined;
  const module = moduleOf(wsgi.path);
  return {
    shape: `Django site ${module}`,
    lines: [
      ...sourceTree('Django runs from its source tree (manage.py, settings, templates) at /app, the working directory.'),
      ...missing(input, 'gunicorn'),
      `cmd = ${quote(['gunicorn', '--bind', '0.0.0.0:8000', `${module}:application`])}`,
      'expose = [8000]',
    ],
  };
}

/** `app = Flask(__name__)`: gunicorn on it when the project has gunicorn (port 8000), else `flask run` (port 5000). */
function flaskApp(input: InitInput): Body | undefined {
  if (!input.dependencies.has('flask')) return undefined;
  const found = findAssignment(input.files, /^(\w+)\s*(?::[^=\n]+)?=\s*(?:flask\.)?Flask\(/m);
  if (!found) return undefined;
  const app = `${moduleOf(found.file.path)}:${found.variable}`;
  const source = input.installed ? [] : sourceTree('The project is not a package: its files go into the image as the source tree at /app.');
  if (input.dependencies.has('gunicorn')) {
    return { shape: `Flask app ${app} (gunicorn)`, lines: [...source, `cmd = ${quote(['gunicorn', '--bind', '0.0.0.0:8000', app])}`, 'expose = [8000]'] };
  }
  return {
    shape: `Flask app ${app} (flask run)`,
    lines: [
      ...source,
      "# Flask's own server; for production add gunicorn (`uv add gunicorn`) and run",
      `# cmd = ${quote(['gunicorn', '--bind', '0.0.0.0:8000', app])}, expose = [8000]`,
      `cmd = ${quote(['flask', '--app', app, 'run', '--host', '0.0.0.0', '--port', '5000'])}`,
      'expose = [5000]',
    ],
  };
}

function consoleScript(input: InitInput): Body | undefined {
  if (input.scripts.length !== 1) return undefined;
  const [script] = input.scripts as [string];
  return {
    shape: `console script ${script}`,
    lines: [
      "# The project's console script (/app/.venv/bin is first on PATH).",
      `cmd = ${quote([script])}`,
      '# expose = [8000]   # the port it listens on, if it serves',
    ],
  };
}

function plainPython(input: InitInput): Body {
  const why =
    input.scripts.length > 1
      ? `the project has ${input.scripts.length} console scripts (${input.scripts.join(', ')}): name the one to run`
      : 'no FastAPI, Django or Flask app and no console script was found: say what to run';
  return {
    shape: 'python',
    lines: [`# ${why[0]!.toUpperCase()}${why.slice(1)}, e.g. cmd = ["python", "-m", "${moduleName(input.name)}"].`, 'cmd = ["python"]', '# expose = [8000]'],
  };
}

/** A comment for a program the command needs that the project does not depend on. */
function missing(input: InitInput, name: string): string[] {
  return input.dependencies.has(name) ? [] : [`# ${name} is not among the project's dependencies: add it (\`uv add ${name}\`) before building.`];
}

/** The shallowest file (then the first by path) where `pattern` assigns the app object; group 1 is the variable. */
function findAssignment(files: SourceFile[], pattern: RegExp): { file: SourceFile; variable: string } | undefined {
  for (const file of [...files].sort(byDepth)) {
    const match = pattern.exec(file.text);
    if (match) return { file, variable: match[1]! };
  }
  return undefined;
}

function byDepth(a: SourceFile, b: SourceFile): number {
  return a.path.split('/').length - b.path.split('/').length || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
}

/** The path of a file below its import root: src/ layouts import from src/. */
function importPath(path: string): string {
  return path.startsWith('src/') ? path.slice('src/'.length) : path;
}

/** The dotted module of a file: src/pkg/app.py -> pkg.app, pkg/__init__.py -> pkg. */
function moduleOf(path: string): string {
  return importPath(path).replace(/\.py$/, '').replace(/\/__init__$/, '').split('/').join('.');
}

function moduleName(projectName: string): string {
  return normalizeName(projectName).replace(/-/g, '_');
}

/** Directories never searched for the app: environments, caches, tests and build output. */
const skippedDirectories = new Set(['node_modules', '__pycache__', 'venv', 'env', 'build', 'dist', 'site-packages', 'tests', 'test', 'docs']);
const maxDepth = 4;
const maxFileBytes = 512 * 1024;

/** The project's Python files, up to `maxDepth` directories down, skipping hidden and `skippedDirectories`. */
export async function readSourceFiles(dir: string): Promise<SourceFile[]> {
  const files: SourceFile[] = [];
  const walk = async (current: string, depth: number): Promise<void> => {
    const entries = await readdir(current, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const path = join(current, entry.name);
      if (entry.isDirectory()) {
        if (depth < maxDepth && !skippedDirectories.has(entry.name)) await walk(path, depth + 1);
      } else if (entry.isFile() && entry.name.endsWith('.py') && (await stat(path)).size <= maxFileBytes) {
        files.push({ path: relative(dir, path).split(sep).join('/'), text: await readFile(path, 'utf8') });
      }
    }
  };
  await walk(dir, 0);
  return files;
}

function initInput(project: PyProject, files: SourceFile[]): InitInput {
  const dependencies = new Set<string>();
  for (const text of project.dependencies) {
    try {
      dependencies.add(parseRequirement(text).normalizedName);
    } catch {
      // uv refuses what is not PEP 508 when it locks; here it only means one dependency fewer to recognize.
    }
  }
  return { name: project.name, dependencies, scripts: Object.keys(project.scripts).sort(), installed: isPackage(project), files };
}

async function initCommand(directory: string): Promise<void> {
  const project = await readPyProject(directory);
  const file = join(project.dir, 'pyproject.toml');
  if (!project.hasProjectTable) throw new UserError(`${file} has no [project] table (a workspace root?): run uvimage init in the project's own directory`);
  const tool = project.raw.tool as Record<string, unknown> | undefined;
  if (tool?.uvimage !== undefined) throw new UserError(`${file} already has a [tool.uvimage] table; uvimage init never overwrites it (its keys: uvimage config-schema)`);

  const plan = planInit(initInput(project, await readSourceFiles(project.dir)));
  const original = await readFile(file, 'utf8');
  // Appended after one blank line; nothing already in the file changes.
  const separator = original.trim() === '' || original.endsWith('\n\n') ? '' : original.endsWith('\n') ? '\n' : '\n\n';
  const text = `${original}${separator}${plan.lines.join('\n')}\n`;
  // The file as it will be must parse, and its table must be one uvimage accepts: anything else is a bug here.
  const written = parseToml(file, text).tool as { uvimage?: unknown } | undefined;
  parseToolUvimage(written?.uvimage, file);

  const temp = join(project.dir, `.pyproject.toml.uvimage-init-${process.pid}`);
  try {
    await writeFile(temp, text, { mode: (await stat(file)).mode & 0o777 });
    await rename(temp, file);
  } finally {
    await rm(temp, { force: true });
  }
  process.stdout.write(`wrote [tool.uvimage] to ${file} for a ${plan.shape}\n`);
}

export function initCommandDefinition(): Command {
  return new Command('init')
    .description('write a commented [tool.uvimage] table into pyproject.toml, fitted to the project (FastAPI, Django, Flask, a console script, else python)')
    .argument('[dir]', 'directory of the uv project (pyproject.toml)', '.')
    .action(initCommand);
}
