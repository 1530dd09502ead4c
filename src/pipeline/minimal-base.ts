/**
 * The minimal flavour at execution: the candidate base (cc's packages, written as the cc layers
 * are and kept in the store like them) under the image's other layers (debian-packages' layer
 * among them: what those packages need counts like what the venv needs) is read as the closure
 * check reads layers (their `layer-files` records), and src/base/minimal.ts picks what stays.
 */
import type { MinimalBaseSelection } from '../base/minimal.js';
import { alwaysKept, selectMinimalBase } from '../base/minimal.js';
import type { DebianBasePlan } from '../base/build.js';
import { loaderSystem } from '../binary/loader.js';
import { architectures } from '../facts/architectures.js';
import type { Layer } from '../oci/image.js';
import type { BlobSource } from '../oci/sink.js';
import type { BlobStore } from '../oci/store.js';
import { stages, type Progress } from '../progress.js';
import type { LayerFiles } from '../oci/layer-files.js';
import { imageTree, layerFiles, owners } from './closure.js';

export async function minimalBaseSelection(
  plan: DebianBasePlan,
  layers: { candidateBase: Layer[]; others: Layer[] },
  options: { store: BlobStore; blobs: BlobSource; pythonInterpreters: { root: string; interpreter: string }[]; workdir: string; progress?: Progress },
): Promise<MinimalBaseSelection> {
  const stage = options.progress?.stage(stages.closureLayers(plan.arch));
  const read = (layer: Layer) => layerFiles(layer, options.blobs, options.store, stage);
  let base: LayerFiles[];
  let others: LayerFiles[];
  try {
    base = await Promise.all(layers.candidateBase.map(read));
    others = await Promise.all(layers.others.map(read));
  } finally {
    stage?.finish();
  }
  const { tree } = imageTree([...base, ...others]);
  const baseTexts = imageTree(base).texts;
  // A path is the base's when a base layer has it and no later layer replaces or removes it.
  const fromBase = new Set(base.flatMap((files) => files.entries.map(([path]) => `/${path}`)));
  for (const files of others) {
    for (const [path] of files.entries) fromBase.delete(`/${path}`);
    for (const path of files.whiteouts) fromBase.delete(`/${path}`);
  }
  const ownerOf = owners(baseTexts);
  return selectMinimalBase({
    view: tree,
    inBase: (path) => fromBase.has(path),
    baseOwner: (path) => ownerOf(path)?.replace(/^Debian /, ''),
    candidates: plan.packages.base.map((pkg) => pkg.name),
    always: alwaysKept(plan.suite),
    system: loaderSystem(architectures[plan.arch].python),
    pythonInterpreters: options.pythonInterpreters,
    workdir: options.workdir,
  });
}
