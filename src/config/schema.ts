/**
 * The [tool.uvimage] table of pyproject.toml: one zod schema that validates the table, reports
 * the key and the problem, and yields the JSON Schema published for editors
 * (`uvimage config-schema`). Flags override what the table says (src/config/options.ts).
 */
import { z } from 'zod';
import { UserError } from '../errors.js';
import { imageFlavourNames } from '../base/flavours.js';
import { debianSuiteNames, type DebianSuite } from '../facts/debian-suites.js';

const envName = /^[A-Za-z_][A-Za-z0-9_]*$/;
const port = z.union([
  z.number().int().min(1).max(65535),
  z.string().regex(/^\d{1,5}(\/(tcp|udp|sctp))?$/, 'a port like 8000 or 53/udp').refine((text) => Number(text.split('/')[0]) >= 1 && Number(text.split('/')[0]) <= 65535, 'a port between 1 and 65535'),
]);
const platform = z.string().regex(/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/, 'os/arch[/variant], e.g. linux/arm64');


export const toolUvimageSchema = z
  .strictObject({
    repository: z.string().min(1).optional().describe('image repository, e.g. registry.example.com/me/app; tags are appended to it'),
    tags: z.array(z.string().min(1)).optional().describe('tags (with `repository`) or full references'),
    'cache-repo': z.string().min(1).optional().describe('a registry repository (REGISTRY/REPO) shared as a layer cache: layers built elsewhere are taken from it, layers built here are published to it (UVIMAGE_CACHE_REPO, --cache-repo)'),
    platforms: z.array(platform).min(1).optional().describe('target platforms, e.g. ["linux/amd64", "linux/arm64"]'),
    base: z.string().min(1).optional().describe('a base image from a registry (by tag or digest); default: the uvimage-built Debian flavour'),
    'base-glibc': z.string().regex(/^2\.\d+$/, 'a glibc version like 2.36').optional().describe("the glibc of `base` (caps manylinux wheels); default: read from the base's dpkg database"),
    flavour: z.enum(imageFlavourNames).optional().describe('the Debian flavour uvimage assembles as the base when `base` is not set (default cc; minimal: of cc\'s packages only what the image\'s ELF files need)'),
    'debian-suite': z.enum(debianSuiteNames as [DebianSuite, ...DebianSuite[]]).optional().describe('Debian release for the assembled base and the Debian runtime (default trixie)'),
    'debian-mirror': z.string().url().regex(/^https?:\/\//, 'an http:// or https:// URL').optional().describe('Debian mirror (also a snapshot.debian.org URL, for pinning)'),
    'debian-lock': z.string().min(1).optional().describe('Debian lock file for the base, relative to the project; {arch} is replaced by amd64/arm64 (written when missing, followed after)'),
    runtime: z.enum(['standalone', 'debian']).optional().describe('python-build-standalone at /python (default) or Debian\'s CPython'),
    python: z.string().regex(/^3\.\d+(\.\d+)?$/, 'a Python version like 3.12 or 3.12.8').optional().describe('Python version; default .python-version, else the newest requires-python allows'),
    entrypoint: z.array(z.string()).optional(),
    cmd: z.array(z.string()).optional(),
    env: z.record(z.string().regex(envName, 'an environment variable name'), z.string()).optional(),
    labels: z.record(z.string().min(1), z.string()).optional(),
    expose: z.array(port).optional(),
    user: z.string().min(1).optional().describe('user to run as (default 65532, nonroot)'),
    workdir: z.string().startsWith('/').optional().describe('working directory (default /app)'),
    files: z
      .array(z.strictObject({ src: z.string().min(1), dest: z.string().startsWith('/') }))
      .optional()
      .describe('extra files or directories to copy into the image'),
    trim: z.boolean().optional().describe('trim the runtime of what servers never use (default true)'),
    extras: z.array(z.string()).optional(),
    'all-extras': z.boolean().optional(),
    groups: z.array(z.string()).optional().describe('dependency groups to install (none of the dev group by default)'),
    'only-groups': z.array(z.string()).optional(),
    'separate-layers': z.array(z.string()).optional().describe('packages (e.g. torch) that get a layer of their own'),
    package: z
      .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
      .optional()
      .describe('workspace member(s) to install, as `uv sync --package`: a virtual workspace root builds one of its members'),
    'all-packages': z.boolean().optional().describe('install every workspace member, as `uv sync --all-packages`'),
    'debian-packages': z
      .array(z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/, 'a Debian package name like libgl1'))
      .optional()
      .describe("Debian packages to add to uvimage's base (with their dependencies), in a layer of their own: what the image's ELF files need that the flavour lacks"),
    'allow-missing': z.array(z.string().min(1)).optional().describe('shared libraries (sonames) the image may lack: ones only loaded optionally'),
    strip: z.boolean().optional().describe("strip debug information from the wheels' ELF files (default true)"),
    source: z
      .boolean()
      .optional()
      .describe("copy the project's source tree into the working directory (default: when uv does not install the project as a package)"),
    'source-include': z.array(z.string().min(1)).optional().describe('only these paths of the source tree (gitignore patterns)'),
    'source-exclude': z.array(z.string().min(1)).optional().describe('paths of the source tree to leave out (gitignore patterns), beside .dockerignore or the defaults'),
    'debug-image': z.boolean().optional().describe("also write <tag>-debug: the image plus busybox at /busybox on PATH, in one extra top layer (distroless' :debug)"),
    sbom: z.boolean().optional().describe('attach CycloneDX and SPDX SBOMs to every pushed image and OCI layout as OCI referrers (default false; --sbom DIR also writes them to DIR)'),
  })
  .describe('uvimage settings ([tool.uvimage] in pyproject.toml)');

export type ToolUvimage = z.infer<typeof toolUvimageSchema>;

/** Validates a [tool.uvimage] table; the error names the file, the key and the problem. */
export function parseToolUvimage(table: unknown, file: string): ToolUvimage {
  const result = toolUvimageSchema.safeParse(table ?? {});
  if (result.success) return result.data;
  throw new ConfigError(describeConfigIssue(result.error.issues[0]!, { file }, table));
}

/**
 * One line for a schema issue: under the flag that set the value (`--base-glibc: …`), or under
 * the file and key (`pyproject.toml: tool.uvimage.base-glibc: …`).
 */
export function describeConfigIssue(issue: z.core.$ZodIssue, where: { flag: string } | { file: string }, input: unknown): string {
  const key = formatKey(issue.path);
  if (issue.code === 'unrecognized_keys') {
    return `${'file' in where ? where.file : where.flag}: unknown key ${issue.keys.map((name) => `${key}.${name}`).join(', ')} (see \`uvimage config-schema\`)`;
  }
  const at = 'flag' in where ? where.flag : `${where.file}: ${key}`;
  // A record key that fails its own check (an env name): say that check, about the key.
  if (issue.code === 'invalid_key') return `${at}: ${issue.issues[0]?.message ?? issue.message} (got ${JSON.stringify(String(issue.path[issue.path.length - 1]))})`;
  const value = issue.path.reduce<unknown>((node, part) => (node !== null && typeof node === 'object' ? (node as Record<PropertyKey, unknown>)[part] : undefined), input);
  const got = value === undefined || (typeof value === 'object' && value !== null) ? '' : ` (got ${JSON.stringify(value)})`;
  return `${at}: ${issue.message}${got}`;
}

/** tool.uvimage.platforms[0], tool.uvimage.env.PORT */
function formatKey(path: PropertyKey[]): string {
  return path.reduce<string>((text, part) => (typeof part === 'number' ? `${text}[${part}]` : `${text}.${String(part)}`), 'tool.uvimage');
}

/** The JSON Schema of [tool.uvimage], for editors (taplo, VS Code's Even Better TOML). */
export function toolUvimageJsonSchema(): unknown {
  return z.toJSONSchema(toolUvimageSchema);
}

/** A problem in [tool.uvimage]: the message names the file, the key and what is wrong. */
export class ConfigError extends UserError {}
