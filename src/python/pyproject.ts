/**
 * pyproject.toml as uvimage needs it: [project], [dependency-groups], [tool.uv] (sources,
 * workspace, dev-dependencies) and [tool.uvimage] (validated elsewhere). Reading is strict about
 * syntax (one line naming file, line and problem) and lenient about keys uvimage does not use.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { UserError } from '../errors.js';
import { parseRequirement } from './requirement.js';

export type DependencyGroupEntry = string | { 'include-group': string };

export interface PyProject {
  /** Absolute directory holding the pyproject.toml. */
  dir: string;
  /** As written in [project] name (undefined names are refused unless the file is a virtual workspace root). */
  name: string;
  version?: string;
  requiresPython?: string;
  dependencies: string[];
  optionalDependencies: Record<string, string[]>;
  /** [dependency-groups], plus [tool.uv] dev-dependencies merged into `dev` as uv does. */
  dependencyGroups: Record<string, DependencyGroupEntry[]>;
  scripts: Record<string, string>;
  guiScripts: Record<string, string>;
  hasBuildSystem: boolean;
  toolUv: Record<string, unknown>;
  toolUvimage: Record<string, unknown>;
  /** Absolute directories of the workspace members other than this one ([tool.uv.workspace] members minus exclude), sorted. */
  workspaceMembers: string[];
  /** Whether [project] is missing (a virtual workspace root that only lists members). */
  hasProjectTable: boolean;
  raw: Record<string, unknown>;
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function stringArray(file: string, key: string, value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) throw new UserError(`${file}: ${key} must be an array of strings`);
  return value;
}

function stringTable(file: string, key: string, value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (!isTable(value) || !Object.values(value).every((item) => typeof item === 'string')) throw new UserError(`${file}: ${key} must be a table of strings`);
  return value as Record<string, string>;
}

/** Parses a TOML file; a syntax error becomes one line naming the file, the line and the problem. */
export async function readTomlFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' ? `${file} not found` : `cannot read ${file}: ${(error as Error).message}`);
  }
  return parseToml(file, text);
}

/** smol-toml builds null-prototype tables; callers (and deepEqual) expect plain objects. */
function toPlain(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toPlain);
  if (typeof value === 'object' && value !== null && !(value instanceof Date)) {
    const result: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) result[key] = toPlain(item);
    return result;
  }
  return value;
}

export function parseToml(file: string, text: string): Record<string, unknown> {
  try {
    return toPlain(parse(text)) as Record<string, unknown>;
  } catch (error) {
    if (error instanceof TomlError) {
      const problem = error.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
      throw new UserError(`${file}:${error.line}:${error.column}: invalid TOML: ${problem}`);
    }
    throw new UserError(`${file}: invalid TOML: ${(error as Error).message.split('\n')[0]}`);
  }
}

/** Expands `packages/*`-style member globs (`*`, `?`, `**` per segment) to directories with a pyproject.toml. */
async function expandMemberGlob(root: string, pattern: string): Promise<string[]> {
  const segments = pattern.split('/').filter((segment) => segment !== '' && segment !== '.');
  let current = [root];
  for (const segment of segments) {
    const next: string[] = [];
    if (segment === '**') {
      for (const dir of current) next.push(dir, ...(await allSubdirectories(dir)));
    } else if (!/[*?[]/.test(segment)) {
      for (const dir of current) next.push(join(dir, segment));
    } else {
      const regex = new RegExp(`^${segment.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`);
      for (const dir of current) {
        const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
        for (const entry of entries) if (entry.isDirectory() && regex.test(entry.name) && !entry.name.startsWith('.')) next.push(join(dir, entry.name));
      }
    }
    current = next;
  }
  const members: string[] = [];
  for (const dir of current) if (await stat(join(dir, 'pyproject.toml')).then((s) => s.isFile(), () => false)) members.push(dir);
  return members;
}

async function allSubdirectories(dir: string): Promise<string[]> {
  const result: string[] = [];
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isDirectory() || entry.name.startsWith('.') || entry.name === 'node_modules') continue;
    const child = join(dir, entry.name);
    result.push(child, ...(await allSubdirectories(child)));
  }
  return result;
}

/** Reads `<dir>/pyproject.toml`. */
export async function readPyProject(dir: string): Promise<PyProject> {
  const absolute = resolve(dir);
  const file = join(absolute, 'pyproject.toml');
  const raw = await readTomlFile(file);
  const project = raw.project;
  if (project !== undefined && !isTable(project)) throw new UserError(`${file}: [project] must be a table`);
  const tool = isTable(raw.tool) ? raw.tool : {};
  const toolUv = isTable(tool.uv) ? tool.uv : {};
  const toolUvimage = isTable(tool.uvimage) ? tool.uvimage : {};
  const workspace = isTable(toolUv.workspace) ? toolUv.workspace : undefined;
  if (!project && !workspace) throw new UserError(`${file}: no [project] table (and not a workspace root with [tool.uv.workspace])`);
  const p = project ?? {};
  if (project && typeof p.name !== 'string') throw new UserError(`${file}: [project] has no name`);
  if (p.version !== undefined && typeof p.version !== 'string') throw new UserError(`${file}: project.version must be a string`);
  if (p['requires-python'] !== undefined && typeof p['requires-python'] !== 'string') throw new UserError(`${file}: project.requires-python must be a string`);

  const dependencies = stringArray(file, 'project.dependencies', p.dependencies);
  const optionalDependencies: Record<string, string[]> = {};
  const optional = p['optional-dependencies'];
  if (optional !== undefined) {
    if (!isTable(optional)) throw new UserError(`${file}: project.optional-dependencies must be a table`);
    for (const [extra, list] of Object.entries(optional)) optionalDependencies[extra] = stringArray(file, `project.optional-dependencies.${extra}`, list);
  }
  const dependencyGroups: Record<string, DependencyGroupEntry[]> = {};
  const groups = raw['dependency-groups'];
  if (groups !== undefined) {
    if (!isTable(groups)) throw new UserError(`${file}: [dependency-groups] must be a table`);
    for (const [group, list] of Object.entries(groups)) {
      if (!Array.isArray(list)) throw new UserError(`${file}: dependency-groups.${group} must be an array`);
      dependencyGroups[group] = list.map((entry) => {
        if (typeof entry === 'string') return entry;
        if (isTable(entry) && typeof entry['include-group'] === 'string') return { 'include-group': entry['include-group'] };
        throw new UserError(`${file}: dependency-groups.${group}: entries are requirement strings or { include-group = "..." }`);
      });
    }
  }
  // [tool.uv] dev-dependencies (legacy) is the `dev` group.
  const legacyDev = stringArray(file, 'tool.uv.dev-dependencies', toolUv['dev-dependencies']);
  if (legacyDev.length) dependencyGroups.dev = [...(dependencyGroups.dev ?? []), ...legacyDev];

  // Every requirement must parse now, so a typo is reported with the file rather than deep in planning.
  const check = (key: string, list: DependencyGroupEntry[]) => {
    for (const entry of list) {
      if (typeof entry !== 'string') continue;
      try {
        parseRequirement(entry);
      } catch (error) {
        throw new UserError(`${file}: ${key}: ${(error as Error).message}`);
      }
    }
  };
  check('project.dependencies', dependencies);
  for (const [extra, list] of Object.entries(optionalDependencies)) check(`project.optional-dependencies.${extra}`, list);
  for (const [group, list] of Object.entries(dependencyGroups)) check(`dependency-groups.${group}`, list);

  const workspaceMembers: string[] = [];
  if (workspace) {
    const members = stringArray(file, 'tool.uv.workspace.members', workspace.members);
    const exclude = stringArray(file, 'tool.uv.workspace.exclude', workspace.exclude);
    const excluded = new Set<string>();
    for (const pattern of exclude) for (const member of await expandMemberGlob(absolute, pattern)) excluded.add(member);
    const found = new Set<string>();
    for (const pattern of members) for (const member of await expandMemberGlob(absolute, pattern)) if (!excluded.has(member) && member !== absolute) found.add(member);
    workspaceMembers.push(...[...found].sort());
  }
  const buildSystem = raw['build-system'];
  return {
    dir: absolute,
    name: typeof p.name === 'string' ? p.name : '',
    version: p.version as string | undefined,
    requiresPython: p['requires-python'] as string | undefined,
    dependencies,
    optionalDependencies,
    dependencyGroups,
    scripts: stringTable(file, 'project.scripts', p.scripts),
    guiScripts: stringTable(file, 'project.gui-scripts', p['gui-scripts']),
    hasBuildSystem: isTable(buildSystem),
    toolUv,
    toolUvimage,
    workspaceMembers,
    hasProjectTable: project !== undefined,
    raw,
  };
}

/** Whether uv treats the project as a package (built and installed) rather than virtual: tool.uv.package, else a [build-system]. */
export function isPackage(project: PyProject): boolean {
  const explicit = project.toolUv.package;
  if (typeof explicit === 'boolean') return explicit;
  return project.hasBuildSystem;
}

/** The PyProjects of the workspace members other than the root (in `workspaceMembers` order). */
export async function readWorkspaceMembers(root: PyProject): Promise<PyProject[]> {
  return Promise.all(root.workspaceMembers.map((dir) => readPyProject(dir)));
}

/**
 * The workspace root above a project, if the project is a member of one (uv's discovery: the
 * nearest ancestor whose [tool.uv.workspace] members include the directory). undefined when the
 * project is its own root.
 */
export async function findWorkspaceRoot(project: PyProject): Promise<PyProject | undefined> {
  let dir = dirname(project.dir);
  for (;;) {
    const file = join(dir, 'pyproject.toml');
    if (await stat(file).then((s) => s.isFile(), () => false)) {
      const candidate = await readPyProject(dir).catch(() => undefined);
      if (candidate && candidate.toolUv.workspace !== undefined && candidate.workspaceMembers.includes(project.dir)) return candidate;
    }
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}
