/**
 * The architectures uvimage builds for, and every name each one goes by: in OCI platforms, in
 * Debian's archive, in Python (platform_machine, wheel platform tags), in python-build-standalone's
 * target triples, in ELF headers and in Node's process.arch. One row per architecture, so no module
 * maps names on its own.
 */
import { UserError } from '../errors.js';

export interface ArchitectureNames {
  /** OCI / Docker platform architecture (and the variant an arm64 image is recorded with). */
  oci: { architecture: string; variant?: string };
  /** Debian's architecture name: dists/<suite>/main/binary-<debian>/, <pkg>_<version>_<debian>.deb. */
  debian: string;
  /** Python's platform_machine, the suffix of manylinux_2_N_<python> wheel tags. */
  python: string;
  /** The oldest manylinux_2_N minor the architecture has (uv's `Arch::get_minimum_manylinux_minor`). */
  minimumManylinuxMinor: number;
  /** python-build-standalone's target triple (its asset names), e.g. x86_64-unknown-linux-gnu. */
  standaloneTriple: string;
  /** Debian's multiarch triplet: /usr/lib/<triplet>/, the loader's default directories. */
  multiarchTriplet: string;
  /** e_machine in ELF headers. */
  elfMachine: number;
  /** Node's process.arch on such a host. */
  node: string;
}

export const architectures = {
  amd64: {
    oci: { architecture: 'amd64' },
    debian: 'amd64',
    python: 'x86_64',
    minimumManylinuxMinor: 5,
    standaloneTriple: 'x86_64-unknown-linux-gnu',
    multiarchTriplet: 'x86_64-linux-gnu',
    elfMachine: 62, // EM_X86_64
    node: 'x64',
  },
  arm64: {
    oci: { architecture: 'arm64', variant: 'v8' },
    debian: 'arm64',
    python: 'aarch64',
    minimumManylinuxMinor: 17,
    standaloneTriple: 'aarch64-unknown-linux-gnu',
    multiarchTriplet: 'aarch64-linux-gnu',
    elfMachine: 183, // EM_AARCH64
    node: 'arm64',
  },
} as const satisfies Record<string, ArchitectureNames>;

/** An architecture uvimage builds for, by its OCI (= Debian) name. */
export type Architecture = keyof typeof architectures;
export const architectureNames = Object.keys(architectures) as Architecture[];

/** Python's name of an architecture: x86_64, aarch64. */
export type PythonArch = (typeof architectures)[Architecture]['python'];

/**
 * The architecture a user's or a document's name means: `linux/amd64`, `amd64`, `x86_64`,
 * `linux/arm64/v8`, `aarch64` …; undefined for one uvimage does not build for.
 */
export function findArchitecture(text: string): Architecture | undefined {
  const normalized = text.trim().toLowerCase().replace(/^linux\//, '');
  for (const name of architectureNames) {
    const names = architectures[name] as ArchitectureNames;
    const variant = names.oci.variant ? `${names.oci.architecture}/${names.oci.variant}` : undefined;
    if ([name, names.python, names.standaloneTriple, variant].includes(normalized)) return name;
  }
  return undefined;
}

/** findArchitecture, or one line naming what is supported. */
export function parseArchitecture(text: string, what = 'platform'): Architecture {
  const found = findArchitecture(text);
  if (!found) throw new UserError(`${what} ${JSON.stringify(text)} is not supported; use ${architectureNames.map((name) => `linux/${name}`).join(' or ')}`);
  return found;
}

/** The architecture of a Python name (x86_64, aarch64). */
export function architectureOfPython(arch: PythonArch): Architecture {
  return architectureNames.find((name) => architectures[name].python === arch)!;
}

/** The architecture of this host, if uvimage builds for it. */
export function hostArchitecture(): Architecture | undefined {
  return architectureNames.find((name) => architectures[name].node === process.arch);
}
