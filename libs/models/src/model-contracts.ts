import type { ValueMetadata } from '@aperture/inference/session-types.js';
import { parseImgsz, parseNames } from '@aperture/inference/onnx-metadata.js';
import type { ModelEntry } from './manifest.js';

/** What a loaded session shows of one file: its inputs, outputs and metadata_props. */
export interface LoadedFileView {
  role: string;
  path: string;
  inputs: ValueMetadata[];
  outputs: ValueMetadata[];
  metadata: Record<string, string>;
}

const CONTRACTS = [
  'ultralytics-detect',
  'ultralytics-obb',
  'ultralytics-segment',
  'ultralytics-classify',
  'sequence-classifier',
  'segment-anything',
  'image-to-image',
] as const;
export type Contract = (typeof CONTRACTS)[number];

/** The contracts each kind may declare (DESIGN.md §5). */
const KIND_CONTRACTS: Record<ModelEntry['kind'], readonly Contract[]> = {
  detector: ['ultralytics-detect', 'ultralytics-obb'],
  segmenter: ['ultralytics-segment'],
  classifier: ['ultralytics-classify', 'sequence-classifier'],
  sam: ['segment-anything'],
  'image-to-image': ['image-to-image'],
};

const SAM_DECODER_INPUTS = ['image_embeddings', 'point_coords', 'point_labels', 'mask_input', 'has_mask_input', 'orig_im_size'];
const SAM_DECODER_OUTPUTS = ['masks', 'iou_predictions', 'low_res_masks'];

const shapeText = (v: ValueMetadata): string => `[${(v.shape ?? []).join(', ')}]`;
const dim = (v: ValueMetadata | undefined, i: number): number | undefined => {
  const d = v?.shape?.[i];
  return typeof d === 'number' && d > 0 ? d : undefined;
};

/**
 * Checks a model's loaded files against the ONNX contract of its kind: input/output names and ranks, dtypes,
 * the Ultralytics channel layout against the class names in metadata_props, the Segment Anything names and
 * embedding shape. Returns every mismatch (empty when the model fits), each naming the file and the tensor.
 */
export function checkContract(model: ModelEntry, files: LoadedFileView[]): string[] {
  const problems: string[] = [];
  const contract = model.contract as Contract;
  if (!CONTRACTS.includes(contract)) return [`unknown contract "${model.contract}" (known: ${CONTRACTS.join(', ')})`];
  if (!KIND_CONTRACTS[model.kind].includes(contract)) {
    return [`kind ${model.kind} cannot use contract ${contract} (allowed: ${KIND_CONTRACTS[model.kind].join(', ')})`];
  }
  const file = (role: string): LoadedFileView | undefined => files.find((f) => f.role === role);
  const need = (f: LoadedFileView, where: 'inputs' | 'outputs', i: number, rank: number, what: string): ValueMetadata | undefined => {
    const v = f[where][i];
    if (!v) {
      problems.push(`${f.path}: expected ${what} as ${where.slice(0, -1)} #${i}, the graph has ${f[where].length} ${where}`);
      return undefined;
    }
    if (!v.isTensor || v.type !== 'float32')
      problems.push(`${f.path}: ${where.slice(0, -1)} ${v.name} must be a float32 tensor, is ${v.type ?? 'not a tensor'}`);
    if ((v.shape?.length ?? -1) !== rank)
      problems.push(`${f.path}: ${where.slice(0, -1)} ${v.name} must have rank ${rank} (${what}), has shape ${shapeText(v)}`);
    return v;
  };
  const count = (f: LoadedFileView, where: 'inputs' | 'outputs', n: number): void => {
    if (f[where].length !== n)
      problems.push(`${f.path}: expected ${n} ${where}, found ${f[where].length} (${f[where].map((v) => v.name).join(', ')})`);
  };
  const imageInput = (f: LoadedFileView): void => {
    const v = need(f, 'inputs', 0, 4, 'images [1,3,H,W]');
    if (v && dim(v, 1) !== undefined && dim(v, 1) !== 3)
      problems.push(`${f.path}: input ${v.name} must have 3 channels, has shape ${shapeText(v)}`);
  };
  const classNames = (f: LoadedFileView): string[] | null => {
    const raw = f.metadata['names'];
    if (raw === undefined || model.labels_override) return model.labels;
    try {
      const names = parseNames(raw);
      if (model.labels && names.join('\u0000') !== model.labels.join('\u0000')) {
        problems.push(`${f.path}: metadata names (${names.join(', ')}) differ from the manifest's labels (${model.labels.join(', ')})`);
      }
      return names;
    } catch (e) {
      problems.push(`${f.path}: metadata "names" cannot be parsed: ${(e as Error).message}`);
      return null;
    }
  };
  const imgsz = (f: LoadedFileView): void => {
    const raw = f.metadata['imgsz'];
    if (raw === undefined) return;
    try {
      const [h, w] = parseImgsz(raw);
      const input = f.inputs[0];
      if (input && ((dim(input, 2) !== undefined && dim(input, 2) !== h) || (dim(input, 3) !== undefined && dim(input, 3) !== w))) {
        problems.push(`${f.path}: metadata imgsz [${h}, ${w}] does not match input ${input.name} ${shapeText(input)}`);
      }
    } catch (e) {
      problems.push(`${f.path}: metadata "imgsz" cannot be parsed: ${(e as Error).message}`);
    }
  };

  switch (contract) {
    case 'ultralytics-detect':
    case 'ultralytics-obb': {
      const f = file('model');
      if (!f) return ['no file with role "model"'];
      count(f, 'inputs', 1);
      imageInput(f);
      imgsz(f);
      const out = need(f, 'outputs', 0, 3, 'output0 [1, 4+nc(+1), N]');
      const nc = classNames(f)?.length;
      const rows = dim(out, 1);
      const want = nc === undefined ? undefined : 4 + nc + (contract === 'ultralytics-obb' ? 1 : 0);
      if (out && rows !== undefined && want !== undefined && rows !== want) {
        problems.push(
          `${f.path}: output ${out.name} has ${rows} rows, ${contract} with ${nc} classes ` +
            `needs ${want} (4 box${contract === 'ultralytics-obb' ? ' + nc + angle' : ' + nc'})`,
        );
      }
      break;
    }
    case 'ultralytics-segment': {
      const f = file('model');
      if (!f) return ['no file with role "model"'];
      count(f, 'inputs', 1);
      count(f, 'outputs', 2);
      imageInput(f);
      imgsz(f);
      const out0 = need(f, 'outputs', 0, 3, 'output0 [1, 4+nc+nm, N]');
      const out1 = need(f, 'outputs', 1, 4, 'output1 prototypes [1, nm, H/4, W/4]');
      const nc = classNames(f)?.length;
      const nm = dim(out1, 1);
      const rows = dim(out0, 1);
      if (out0 && rows !== undefined && nc !== undefined && nm !== undefined && rows !== 4 + nc + nm) {
        problems.push(
          `${f.path}: output ${out0.name} has ${rows} rows, a segmenter with ${nc} classes and ${nm} prototypes needs ${4 + nc + nm}`,
        );
      }
      break;
    }
    case 'ultralytics-classify': {
      const f = file('model');
      if (!f) return ['no file with role "model"'];
      count(f, 'inputs', 1);
      imageInput(f);
      const out = need(f, 'outputs', 0, 2, 'output0 [1, nc]');
      const nc = classNames(f)?.length;
      if (out && dim(out, 1) !== undefined && nc !== undefined && dim(out, 1) !== nc)
        problems.push(`${f.path}: output ${out.name} has ${dim(out, 1)} classes, the labels name ${nc}`);
      break;
    }
    case 'sequence-classifier': {
      const f = file('model');
      if (!f) return ['no file with role "model"'];
      count(f, 'inputs', 1);
      need(f, 'inputs', 0, 3, 'rows [1, T, features]');
      const out = need(f, 'outputs', 0, 2, 'probabilities [1, nc]');
      const nc = model.labels?.length;
      if (out && dim(out, 1) !== undefined && nc !== undefined && dim(out, 1) !== nc)
        problems.push(`${f.path}: output ${out.name} has ${dim(out, 1)} classes, the labels name ${nc}`);
      break;
    }
    case 'segment-anything': {
      const enc = file('encoder');
      const dec = file('decoder');
      if (!enc || !dec) return ['segment-anything needs two files, roles "encoder" and "decoder"'];
      count(enc, 'inputs', 1);
      imageInput(enc);
      const emb = need(enc, 'outputs', 0, 4, 'image_embeddings [1, 256, 64, 64]');
      if (emb && emb.name !== 'image_embeddings')
        problems.push(`${enc.path}: the encoder's output must be named image_embeddings, is ${emb.name}`);
      if (emb && (dim(emb, 1) ?? 256) !== 256)
        problems.push(`${enc.path}: image_embeddings must have 256 channels, has shape ${shapeText(emb)}`);
      const names = dec.inputs.map((v) => v.name);
      const missing = SAM_DECODER_INPUTS.filter((n) => !names.includes(n));
      if (missing.length)
        problems.push(
          `${dec.path}: decoder inputs ${missing.join(', ')} are missing (the official export has ${SAM_DECODER_INPUTS.join(', ')})`,
        );
      const outs = dec.outputs.map((v) => v.name);
      const missingOut = SAM_DECODER_OUTPUTS.filter((n) => !outs.includes(n));
      if (missingOut.length) problems.push(`${dec.path}: decoder outputs ${missingOut.join(', ')} are missing`);
      break;
    }
    case 'image-to-image': {
      const f = file('model');
      if (!f) return ['no file with role "model"'];
      count(f, 'inputs', 1);
      imageInput(f);
      need(f, 'outputs', 0, 4, 'images [B, 3, H, W]');
      break;
    }
  }
  return problems;
}
