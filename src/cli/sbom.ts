/**
 * The SBOM emit step of `uvimage build`: after execution, each platform image is read back
 * through src/report (its layers from the store, checked as they stream), its SBOM assembled
 * from what the image holds and what the plan and the execution report know (src/report/sbom.ts),
 * and written as CycloneDX 1.6 and SPDX 2.3 JSON:
 *
 *   --sbom DIR          `<os>-<arch>[-<variant>].cdx.json` and `.spdx.json` per platform, each
 *                       written to a temp name and renamed;
 *   --push / --oci      with --sbom or `sbom = true` in [tool.uvimage], each document attached to
 *                       its platform manifest as an OCI referrer (src/oci/referrers.ts), which
 *                       the sinks store beside the image.
 */
import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError, describeError } from '../errors.js';
import { debianSuites } from '../facts/debian-suites.js';
import { architectures } from '../facts/architectures.js';
import type { BlobSource } from '../oci/sink.js';
import { artifactImages, type Descriptor } from '../oci/image.js';
import { makeReferrer, type Referrer } from '../oci/referrers.js';
import { randomSuffix } from '../oci/sinks/common.js';
import type { ExecutedBuild, PlatformReport } from '../pipeline/execute.js';
import type { BuildPlan, PlatformPlan } from '../pipeline/plan.js';
import { asTask, stages, type Progress } from '../progress.js';
import { normalizeName } from '../python/markers.js';
import { parseReference, formatReference } from '../registry/reference.js';
import { openBuiltImage } from '../report/image-source.js';
import { analyzeImage } from '../report/inspect.js';
import { collectSbom, isSbomMetadata, sbomContentsOf, type SbomBuild, type SbomModel } from '../report/sbom.js';
import { cycloneDxMediaType, renderCycloneDx } from '../report/sbom-cyclonedx.js';
import { renderSpdx, spdxMediaType } from '../report/sbom-spdx.js';
import { uvimageVersion } from '../version.js';

/** The SBOMs of one platform image, serialized. */
export interface PlatformSbom {
  platform: string;
  /** The platform manifest the documents are about. */
  subject: Descriptor;
  model: SbomModel;
  cyclonedx: Buffer;
  spdx: Buffer;
}

/** `linux/arm64/v8` → `linux-arm64-v8`: the file name part of a platform. */
export function platformFileName(platform: string): string {
  return platform.replace(/\//g, '-');
}

/** Checks --sbom DIR before any work: it may be missing (it is made), or must be a directory. */
export async function checkSbomDirectory(dir: string): Promise<void> {
  const info = await stat(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw new UserError(`--sbom ${dir}: ${describeError(error)}`);
  });
  if (info && !info.isDirectory()) throw new UserError(`--sbom ${dir} exists and is not a directory`);
}

/** What the build knows about one platform, for its SBOM. */
function sbomBuild(plan: BuildPlan, platform: PlatformPlan, report: PlatformReport): SbomBuild {
  const runtime = platform.runtime;
  const members = platform.install.packages.filter((pkg) => pkg.kind === 'build' && pkg.member).map((pkg) => normalizeName(pkg.name));
  return {
    created: plan.created.iso,
    toolVersion: uvimageVersion,
    project: { name: plan.project.name, members },
    arch: architectures[platform.target.arch].python,
    runtime:
      runtime.kind === 'standalone'
        ? { kind: 'standalone', version: runtime.version, release: runtime.release, asset: runtime.asset, url: runtime.url, sha256: runtime.sha256 }
        : { kind: 'debian', version: runtime.version, packages: runtime.packages },
    debs: report.debs,
    packages: platform.install.packages,
    ...(platform.base.kind === 'debian' ? { debianVersion: debianSuites[platform.base.plan.suite].version } : {}),
  };
}

/** The image's name in its SBOM: the repository of the first tag, else the project's name. */
function imageName(tags: readonly string[], project: string): { name: string; repository?: string } {
  const first = tags[0];
  if (!first) return { name: project };
  const reference = parseReference(first);
  const repository = formatReference({ registry: reference.registry, repository: reference.repository });
  return { name: repository, repository };
}

/** Reads each platform image of the build and writes its SBOMs in memory. */
export async function makeSboms(
  plan: BuildPlan,
  executed: ExecutedBuild,
  context: { blobs: BlobSource; progress: Progress; tags: readonly string[] },
): Promise<PlatformSbom[]> {
  const images = artifactImages(executed.artifact);
  const { name, repository } = imageName(context.tags, plan.project.name);
  const sboms: PlatformSbom[] = [];
  for (const [position, image] of images.entries()) {
    const platformPlan = plan.platforms[position]!;
    const report = executed.reports[position]!;
    const source = await openBuiltImage(`${name} (${platformPlan.platform})`, image, context.blobs);
    // Read back as one task of the SBOM stage (emitSboms), not a stage of its own.
    const analysis = await analyzeImage(source, { collect: isSbomMetadata });
    const contents = sbomContentsOf(analysis, report.layers.map((layer) => layer.role));
    const subject = image.manifest.descriptor;
    const model = collectSbom(
      { name, ...(repository ? { repository } : {}), platform: image.platform, manifest: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size } },
      sbomBuild(plan, platformPlan, report),
      contents,
    );
    sboms.push({
      platform: platformPlan.platform,
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
      model,
      cyclonedx: Buffer.from(`${JSON.stringify(renderCycloneDx(model), null, 2)}\n`, 'utf8'),
      spdx: Buffer.from(`${JSON.stringify(renderSpdx(model), null, 2)}\n`, 'utf8'),
    });
  }
  return sboms;
}

/** The documents as referrers of their platform manifests. */
export function sbomReferrers(sboms: readonly PlatformSbom[], created: string): Referrer[] {
  return sboms.flatMap((sbom) => [
    makeReferrer({ subject: sbom.subject, artifactType: cycloneDxMediaType, document: sbom.cyclonedx, title: `${platformFileName(sbom.platform)}.cdx.json`, created }),
    makeReferrer({ subject: sbom.subject, artifactType: spdxMediaType, document: sbom.spdx, title: `${platformFileName(sbom.platform)}.spdx.json`, created }),
  ]);
}

/** Writes the documents into DIR, each to a temp name first and renamed into place; the paths written. */
export async function writeSbomFiles(dir: string, sboms: readonly PlatformSbom[]): Promise<string[]> {
  const written: string[] = [];
  try {
    await mkdir(dir, { recursive: true });
    for (const sbom of sboms) {
      for (const [suffix, bytes] of [['cdx.json', sbom.cyclonedx], ['spdx.json', sbom.spdx]] as const) {
        const path = join(dir, `${platformFileName(sbom.platform)}.${suffix}`);
        const temp = join(dir, `.${platformFileName(sbom.platform)}.${suffix}.tmp-${randomSuffix()}`);
        await writeFile(temp, bytes, { mode: 0o644 });
        await rename(temp, path);
        written.push(path);
      }
    }
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`--sbom ${dir}: cannot write the SBOMs: ${describeError(error)}`);
  }
  return written;
}

/** The SBOMs, as build asks for them: made when written or attached, then written and returned as referrers. */
export async function emitSboms(
  plan: BuildPlan,
  executed: ExecutedBuild,
  context: { blobs: BlobSource; progress: Progress; tags: readonly string[] },
): Promise<{ referrers: Referrer[]; files: string[] } | undefined> {
  const { sbom } = plan.outputs;
  if (!sbom || (!sbom.dir && !sbom.attach)) return undefined;
  const stage = context.progress.stage(stages.sboms());
  const { sboms, files } = await asTask(stage, 'CycloneDX, SPDX', async () => {
    const made = await makeSboms(plan, executed, context);
    return { sboms: made, files: sbom.dir ? await writeSbomFiles(sbom.dir, made) : [] };
  }).finally(() => stage.finish());
  return { referrers: sbom.attach ? sbomReferrers(sboms, plan.created.iso) : [], files };
}
