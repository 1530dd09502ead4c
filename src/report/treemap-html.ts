/**
 * `uvimage inspect --html FILE`: one self-contained page (no network, no CDN: the script and
 * styles below are all it has) with a zoomable treemap of the image — layer → owner →
 * directory → file, sized by bytes — and sortable tables: the layers, and what the node in view
 * holds. A click on a rectangle (or a row of the contents table) zooms into it; the breadcrumb
 * goes back; the page's fragment names the node in view (`#layer%203`), so a view can be linked.
 *
 * Each layer's rectangle is its whole uncompressed tar: its files plus a "tar headers and
 * padding" leaf for the rest, so the layers add up to the image's uncompressed size. Files a
 * later layer replaced or deleted are drawn hatched: they cost bytes in their layer but are not
 * in the image as it runs.
 *
 * The treemap layout is the squarified algorithm of Bruls, Huizing and van Wijk ("Squarified
 * Treemaps", 2000): children in decreasing size are laid in rows along the shorter side, a row
 * growing while that improves its worst aspect ratio. It is written here (a few dozen lines)
 * rather than inlined from a library, so the page is exactly what this file says.
 *
 * The page is written under a temp name beside FILE and renamed into place.
 */
import { rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { formatBytes } from '../progress.js';
import { asWriteError, randomSuffix, removeQuietly } from '../oci/sinks/common.js';
import { describeOwner, type ImageAnalysis, type InspectReport } from './inspect.js';
import { ownerKey } from './owners.js';

/** A node of the page's tree: name, bytes, children, kind (colour), flags (shadowed, overhead). */
export interface TreeNode {
  n: string;
  s: number;
  c?: TreeNode[];
  /** The owner kind, for the colour of an owner's rectangles. */
  k?: string;
  /** 1: shadowed by a later layer; 2: tar headers and padding. */
  f?: 1 | 2;
}

interface DirectoryBuild {
  dirs: Map<string, DirectoryBuild>;
  files: TreeNode[];
}

function directoryNodes(build: DirectoryBuild, kind: string): TreeNode[] {
  const nodes: TreeNode[] = [...build.files];
  for (const [name, dir] of build.dirs) {
    let label = name;
    let current = dir;
    // A chain of directories with one directory each is one node: app/.venv/lib/python3.12/site-packages.
    while (current.files.length === 0 && current.dirs.size === 1) {
      const [childName, child] = [...current.dirs][0]!;
      label = `${label}/${childName}`;
      current = child;
    }
    const children = directoryNodes(current, kind);
    nodes.push({ n: `${label}/`, s: children.reduce((sum, child) => sum + child.s, 0), c: children, k: kind });
  }
  return nodes.sort((a, b) => b.s - a.s || (a.n < b.n ? -1 : 1));
}

/** The image as a tree: layers, their owners, the owners' directories and files. */
export function imageTree(analysis: ImageAnalysis): TreeNode {
  const layers = analysis.layers.map((layer): TreeNode => {
    const owners = new Map<string, { label: string; kind: string; root: DirectoryBuild }>();
    let fileBytes = 0;
    for (const [position, entry] of layer.contents.entries.entries()) {
      if (entry.type === 'directory') continue;
      const owner = analysis.ownership.owners[layer.index]![position]!;
      const key = ownerKey(owner);
      let group = owners.get(key);
      if (!group) owners.set(key, (group = { label: describeOwner(owner), kind: owner.kind, root: { dirs: new Map(), files: [] } }));
      const parts = entry.path.split('/');
      let dir = group.root;
      for (const part of parts.slice(0, -1)) {
        let next = dir.dirs.get(part);
        if (!next) dir.dirs.set(part, (next = { dirs: new Map(), files: [] }));
        dir = next;
      }
      const leaf: TreeNode = { n: parts[parts.length - 1]!, s: entry.size, k: owner.kind };
      if (analysis.merged.fates[layer.index]![position]!.state !== 'visible') leaf.f = 1;
      dir.files.push(leaf);
      fileBytes += entry.size;
    }
    const children = [...owners.values()].map((group): TreeNode => {
      const nodes = directoryNodes(group.root, group.kind);
      return { n: group.label, s: nodes.reduce((sum, node) => sum + node.s, 0), c: nodes, k: group.kind };
    });
    children.push({ n: 'tar headers and padding', s: layer.uncompressedSize - fileBytes, f: 2 });
    children.sort((a, b) => b.s - a.s || (a.n < b.n ? -1 : 1));
    return { n: `layer ${layer.index + 1}`, s: layer.uncompressedSize, c: children };
  });
  return { n: analysis.name, s: layers.reduce((sum, layer) => sum + layer.s, 0), c: layers };
}

/** JSON that is safe inside a <script> element. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!);
}

export function treemapHtml(analysis: ImageAnalysis, report: InspectReport): string {
  const data = {
    image: report.image,
    layers: report.layers.map((layer) => ({
      number: layer.number,
      digest: layer.digest,
      createdBy: layer.createdBy ?? '',
      compressedSize: layer.compressedSize,
      uncompressedSize: layer.uncompressedSize,
      files: layer.files,
    })),
    tree: imageTree(analysis),
  };
  const title = `uvimage inspect: ${report.image.name}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${pageStyle}</style>
</head>
<body>
<header>
  <h1>${escapeHtml(report.image.name)}</h1>
  <p id="summary"></p>
</header>
<nav id="breadcrumb" aria-label="zoom path"></nav>
<div id="treemap" role="img" aria-label="treemap of the image's bytes"></div>
<p id="legend"></p>
<section>
  <h2>Layers</h2>
  <table id="layers" class="sortable"><thead><tr>
    <th data-key="number" data-type="number">#</th><th data-key="digest">digest</th><th data-key="createdBy">created by</th>
    <th data-key="compressedSize" data-type="number">compressed</th><th data-key="uncompressedSize" data-type="number">uncompressed</th><th data-key="files" data-type="number">files</th>
  </tr></thead><tbody></tbody>
  <tfoot><tr><td></td><td></td><th>image</th><td id="total-compressed"></td><td id="total-uncompressed"></td><td id="total-files"></td></tr></tfoot></table>
</section>
<section>
  <h2 id="contents-title">Contents</h2>
  <table id="contents" class="sortable"><thead><tr>
    <th data-key="name">name</th><th data-key="kind">owner kind</th><th data-key="size" data-type="number">bytes</th><th data-key="share" data-type="number">share</th><th data-key="files" data-type="number">files</th>
  </tr></thead><tbody></tbody></table>
</section>
<script type="application/json" id="image-data">${scriptJson(data)}</script>
<script>
${formatBytes.toString()}
${pageScript}
</script>
</body>
</html>
`;
}

/** Writes the page under a temp name beside `path`, then renames it into place. */
export async function writeTreemapHtml(path: string, analysis: ImageAnalysis, report: InspectReport): Promise<void> {
  const temp = join(dirname(path), `.${randomSuffix()}.uvimage-html.tmp`);
  try {
    await writeFile(temp, treemapHtml(analysis, report));
    await rename(temp, path);
  } catch (error) {
    await removeQuietly(temp);
    throw asWriteError(error, '--html', path);
  }
}

const pageStyle = `
:root { font: 14px/1.4 system-ui, sans-serif; color: #1d2330; background: #fafafa; }
body { margin: 0 auto; padding: 12px 20px 40px; max-width: 1400px; }
h1 { font-size: 20px; margin: 4px 0; word-break: break-all; }
h2 { font-size: 16px; margin: 24px 0 6px; }
#summary { margin: 0 0 8px; color: #4a5060; }
#breadcrumb { margin: 6px 0; font-size: 13px; }
#breadcrumb a { color: #1f5fbf; cursor: pointer; text-decoration: underline; }
#breadcrumb span.sep { color: #999; margin: 0 6px; }
#treemap { position: relative; width: 100%; height: 560px; background: #e8e8ec; border: 1px solid #bbb; overflow: hidden; }
.tm { position: absolute; box-sizing: border-box; border: 1px solid rgba(255,255,255,0.75); overflow: hidden; cursor: pointer; font-size: 11px; line-height: 13px; color: #111; }
.tm > .label { display: block; padding: 1px 3px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; pointer-events: none; }
.tm.group > .label { font-weight: 600; }
.tm.shadowed { background-image: repeating-linear-gradient(45deg, rgba(0,0,0,0.28) 0 3px, transparent 3px 7px); }
.tm.overhead { background: #c9c9cf; color: #444; }
.tm:hover { outline: 2px solid #000; z-index: 2; }
#legend span.swatch { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: -2px; border: 1px solid #888; }
table { border-collapse: collapse; width: 100%; background: #fff; font-size: 13px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e3e3e8; text-align: left; vertical-align: top; }
td.num, th[data-type="number"] { text-align: right; font-variant-numeric: tabular-nums; }
thead th { cursor: pointer; user-select: none; background: #eef0f4; position: sticky; top: 0; }
thead th.asc::after { content: " \\25B2"; } thead th.desc::after { content: " \\25BC"; }
tfoot th, tfoot td { font-weight: 600; border-top: 2px solid #ccc; }
td.created { max-width: 560px; word-break: break-word; color: #4a5060; }
code { font-size: 12px; }
#contents tbody tr { cursor: pointer; }
#contents tbody tr:hover { background: #f3f6fb; }
`;

/**
 * The page's script. It reads the data element, numbers the nodes, and renders the breadcrumb,
 * the treemap and the contents table for the node in view. formatBytes is uvimage's own,
 * placed before this script.
 */
const pageScript = String.raw`
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('image-data').textContent);
  var nodes = [];
  (function number(node, parent) {
    node.id = nodes.length; node.parent = parent; nodes.push(node);
    if (node.c) for (var i = 0; i < node.c.length; i++) number(node.c[i], node);
  })(data.tree, null);
  var hues = { runtime: 140, debian: 355, python: 212, project: 32, unowned: 0 };
  function hash(text) { var h = 0; for (var i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) | 0; return Math.abs(h); }
  function colour(node, depth) {
    if (node.f === 2) return '#c9c9cf';
    if (!node.k) return 'hsl(230, 10%, ' + (86 - depth * 4) + '%)';
    var hue = hues[node.k]; var sat = node.k === 'unowned' ? 0 : 55;
    return 'hsl(' + hue + ', ' + sat + '%, ' + (58 + (hash(ownerOf(node)) % 22) - Math.min(depth, 4) * 2) + '%)';
  }
  function ownerOf(node) { var n = node; while (n.parent && n.parent.k) n = n.parent; return n.n; }
  function filesIn(node) { if (!node.c) return node.f === 2 ? 0 : 1; var t = 0; for (var i = 0; i < node.c.length; i++) t += filesIn(node.c[i]); return t; }
  function pathOf(node) { var parts = []; for (var n = node; n; n = n.parent) parts.unshift(n); return parts; }

  // Squarified treemap (Bruls, Huizing, van Wijk 2000).
  function squarify(items, x, y, w, h) {
    var out = []; var total = 0; for (var i = 0; i < items.length; i++) total += items[i].s;
    if (total <= 0 || w <= 0 || h <= 0) return out;
    var scale = (w * h) / total; var rest = items.slice();
    while (rest.length) {
      var side = Math.min(w, h); var row = []; var rowArea = 0; var best = Infinity;
      while (rest.length) {
        var area = rest[0].s * scale; var next = row.concat([rest[0]]); var nextArea = rowArea + area;
        var worst = 0; for (var j = 0; j < next.length; j++) { var a = next[j].s * scale; var r = Math.max((side * side * a) / (nextArea * nextArea), (nextArea * nextArea) / (side * side * a)); if (r > worst) worst = r; }
        if (row.length && worst > best) break;
        row = next; rowArea = nextArea; best = worst; rest.shift();
      }
      var thick = rowArea / side; var offset = 0;
      for (var k = 0; k < row.length; k++) {
        var length = (row[k].s * scale) / thick;
        if (w >= h) out.push({ node: row[k], x: x, y: y + offset, w: thick, h: length });
        else out.push({ node: row[k], x: x + offset, y: y, w: length, h: thick });
        offset += length;
      }
      if (w >= h) { x += thick; w -= thick; } else { y += thick; h -= thick; }
    }
    return out;
  }

  var view = data.tree; var budget = 0;
  var box = document.getElementById('treemap');
  function draw(node, parentEl, x, y, w, h, depth) {
    var items = (node.c || []).filter(function (child) { return child.s > 0; });
    var rects = squarify(items, x, y, w, h);
    for (var i = 0; i < rects.length; i++) {
      var r = rects[i]; var child = r.node;
      // Every child of the node in view is drawn, however thin, so the view adds up; deeper ones only when visible.
      if (depth > 1 && (r.w < 1 || r.h < 1)) continue;
      var el = document.createElement('div');
      el.className = 'tm' + (child.c ? ' group' : '') + (child.f === 1 ? ' shadowed' : '') + (child.f === 2 ? ' overhead' : '');
      el.style.left = r.x + 'px'; el.style.top = r.y + 'px'; el.style.width = r.w + 'px'; el.style.height = r.h + 'px';
      el.style.backgroundColor = colour(child, depth);
      el.dataset.id = child.id; el.dataset.bytes = child.s; el.dataset.depth = depth;
      el.title = pathOf(child).slice(1).map(function (n) { return n.n; }).join(' › ') + '\n' + formatBytes(child.s) + (child.f === 1 ? ' (shadowed by a later layer)' : '');
      if (r.w > 36 && r.h > 14) { var label = document.createElement('span'); label.className = 'label'; label.textContent = child.n + ' ' + formatBytes(child.s); el.appendChild(label); }
      parentEl.appendChild(el); budget--;
      if (child.c && r.w > 30 && r.h > 30 && budget > 0) draw(child, el, 2, 15, r.w - 4, r.h - 17, depth + 1);
    }
  }
  function render() {
    box.textContent = ''; budget = 3000;
    draw(view, box, 0, 0, box.clientWidth, box.clientHeight, 1);
    var crumbs = document.getElementById('breadcrumb'); crumbs.textContent = '';
    var trail = pathOf(view);
    for (var i = 0; i < trail.length; i++) {
      if (i) { var sep = document.createElement('span'); sep.className = 'sep'; sep.textContent = '›'; crumbs.appendChild(sep); }
      var part = document.createElement(i === trail.length - 1 ? 'strong' : 'a');
      part.textContent = trail[i].n + ' (' + formatBytes(trail[i].s) + ')'; part.dataset.id = trail[i].id;
      crumbs.appendChild(part);
    }
    renderContents();
  }
  // The zoomed node is also the page's fragment (#layer 3/runtime python-build-standalone/…), so a view can be linked to.
  function zoom(node) {
    while (node && !node.c) node = node.parent;
    if (!node) return;
    view = node; render();
    var fragment = '#' + pathOf(node).slice(1).map(function (n) { return encodeURIComponent(n.n); }).join('/');
    if (location.hash !== fragment && history.replaceState) history.replaceState(null, '', fragment === '#' ? location.pathname : fragment);
  }
  function fromFragment() {
    var node = data.tree; var names = location.hash.replace(/^#/, '').split('/').filter(Boolean).map(decodeURIComponent);
    for (var i = 0; i < names.length && node; i++) node = (node.c || []).filter(function (child) { return child.n === names[i]; })[0];
    return node || data.tree;
  }
  box.addEventListener('click', function (event) {
    var el = event.target.closest('.tm'); if (el) zoom(nodes[Number(el.dataset.id)]);
  });
  document.getElementById('breadcrumb').addEventListener('click', function (event) {
    var el = event.target.closest('a'); if (el) zoom(nodes[Number(el.dataset.id)]);
  });
  window.addEventListener('resize', render);

  // Tables, sortable by a click on a column's header.
  function cell(row, text, className) { var td = document.createElement('td'); td.textContent = text; if (className) td.className = className; row.appendChild(td); return td; }
  function sortable(table, rows, fill) {
    var state = { key: null, dir: 1 };
    function show() {
      var body = table.tBodies[0]; body.textContent = '';
      var sorted = rows.slice();
      if (state.key) sorted.sort(function (a, b) { var x = a[state.key], y = b[state.key]; return (x < y ? -1 : x > y ? 1 : 0) * state.dir; });
      for (var i = 0; i < sorted.length; i++) body.appendChild(fill(sorted[i]));
      var heads = table.tHead.rows[0].cells;
      for (var j = 0; j < heads.length; j++) heads[j].className = heads[j].dataset.key === state.key ? (state.dir > 0 ? 'asc' : 'desc') : '';
    }
    table.tHead.onclick = function (event) {
      var th = event.target.closest('th'); if (!th) return;
      var key = th.dataset.key;
      state.dir = state.key === key ? -state.dir : th.dataset.type === 'number' ? -1 : 1; state.key = key; show();
    };
    show();
  }
  sortable(document.getElementById('layers'), data.layers, function (layer) {
    var tr = document.createElement('tr');
    tr.dataset.layer = layer.number; tr.dataset.compressed = layer.compressedSize; tr.dataset.uncompressed = layer.uncompressedSize;
    cell(tr, String(layer.number), 'num');
    var code = document.createElement('code'); code.textContent = layer.digest.slice(7, 19); cell(tr, '').appendChild(code);
    cell(tr, layer.createdBy, 'created');
    cell(tr, formatBytes(layer.compressedSize), 'num').title = layer.compressedSize + ' bytes';
    cell(tr, formatBytes(layer.uncompressedSize), 'num').title = layer.uncompressedSize + ' bytes';
    cell(tr, String(layer.files), 'num');
    return tr;
  });
  var image = data.image;
  var totals = [['total-compressed', image.compressedSize], ['total-uncompressed', image.uncompressedSize]];
  for (var t = 0; t < totals.length; t++) { var el = document.getElementById(totals[t][0]); el.textContent = formatBytes(totals[t][1]); el.dataset.bytes = totals[t][1]; el.className = 'num'; }
  document.getElementById('total-files').textContent = String(image.files);
  document.getElementById('summary').textContent = image.platform + (image.manifestDigest ? ' · ' + image.manifestDigest : '') + ' · ' + data.layers.length + ' layers · ' +
    formatBytes(image.compressedSize) + ' compressed · ' + formatBytes(image.uncompressedSize) + ' uncompressed · ' + image.files + ' files';
  var legend = document.getElementById('legend');
  ['runtime', 'debian', 'python', 'project', 'unowned'].forEach(function (kind) {
    var swatch = document.createElement('span'); swatch.className = 'swatch'; swatch.style.backgroundColor = colour({ k: kind, n: kind, parent: null }, 1);
    legend.appendChild(swatch); legend.appendChild(document.createTextNode(kind));
  });
  var hatch = document.createElement('span'); hatch.className = 'swatch tm shadowed'; hatch.style.position = 'static'; legend.appendChild(hatch);
  legend.appendChild(document.createTextNode('shadowed by a later layer'));

  function renderContents() {
    document.getElementById('contents-title').textContent = 'Contents of ' + pathOf(view).map(function (n) { return n.n; }).join(' › ');
    var rows = (view.c || []).map(function (child) {
      return { id: child.id, name: child.n, kind: child.f === 2 ? 'tar' : child.k || '', size: child.s, share: view.s ? child.s / view.s : 0, files: filesIn(child), shadowed: child.f === 1 };
    });
    sortable(document.getElementById('contents'), rows, function (row) {
      var tr = document.createElement('tr'); tr.dataset.id = row.id; tr.dataset.bytes = row.size;
      cell(tr, row.name + (row.shadowed ? ' (shadowed)' : '')); cell(tr, row.kind);
      cell(tr, formatBytes(row.size), 'num').title = row.size + ' bytes';
      cell(tr, (row.share * 100).toFixed(1) + '%', 'num'); cell(tr, String(row.files), 'num');
      return tr;
    });
  }
  document.getElementById('contents').tBodies[0].addEventListener('click', function (event) {
    var tr = event.target.closest('tr'); if (tr) zoom(nodes[Number(tr.dataset.id)]);
  });
  view = fromFragment();
  render();
  window.addEventListener('hashchange', function () { view = fromFragment(); render(); });
})();
`;
