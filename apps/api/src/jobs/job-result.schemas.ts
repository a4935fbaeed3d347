import type { OpenAPIObject } from '@nestjs/swagger';
import { LENGTH_UNITS } from '@aperture/common/length-units.js';
import { ALL_JOB_TYPES, type JobType } from '@aperture/queue/job-registry.js';

/**
 * The schemas of what every job type's handler returns (libs/queue/src/job-registry.ts, JobResults), as OpenAPI
 * components, and the discriminated views of the DTOs that carry a result: TaskResultDto and TaskDto by task type,
 * JobResultDto and JobDto by job type, a model inference by the model's kind. A contract test runs real jobs and
 * validates their results against these, so the document cannot drift from what the worker returns.
 */

type Schema = NonNullable<NonNullable<OpenAPIObject['components']>['schemas']>[string];
type ReferenceObject = Extract<Schema, { $ref: string }>;
type SchemaObject = Exclude<Schema, ReferenceObject>;

const ref = (name: string): ReferenceObject => ({ $ref: `#/components/schemas/${name}` });
const num = (description?: string): SchemaObject => ({ type: 'number', ...(description ? { description } : {}) });
const int = (description?: string): SchemaObject => ({ type: 'integer', ...(description ? { description } : {}) });
const str = (description?: string): SchemaObject => ({ type: 'string', ...(description ? { description } : {}) });
const arr = (items: Schema, description?: string, size?: number): SchemaObject => ({
  type: 'array',
  items,
  ...(size !== undefined ? { minItems: size, maxItems: size } : {}),
  ...(description ? { description } : {}),
});
const nullable = (s: Schema): SchemaObject => ('$ref' in s ? { type: 'object', allOf: [s], nullable: true } : { ...s, nullable: true });
/**
 * A nullable union with a discriminator (such as ModelInferResultDto): its alternatives inline, not an allOf of its
 * reference, since code generators read an allOf of a discriminated schema as inheritance and drop its discriminator
 * property (a generated client would lose `kind` and could not narrow the union).
 */
const nullableUnion = (s: SchemaObject): SchemaObject => ({
  type: 'object',
  oneOf: s.oneOf,
  ...(s.discriminator ? { discriminator: s.discriminator } : {}),
  nullable: true,
});
/** An object whose every property is required unless listed in `optional`. */
const obj = (properties: Record<string, Schema>, description?: string, optional: string[] = []): SchemaObject => ({
  type: 'object',
  properties,
  required: Object.keys(properties).filter((k) => !optional.includes(k)),
  ...(description ? { description } : {}),
});
const point = (description: string): SchemaObject => arr(num(), description, 2);
const quad = (description: string): SchemaObject => arr(num(), description, 4);

/** The component schemas of the results, by name. */
export const RESULT_SCHEMAS: Record<string, SchemaObject> = {
  ImageSizeDto: obj({ width: int(), height: int() }, 'Width and height of the image the job worked on, in pixels'),
  RleMaskDto: obj(
    { size: arr(int(), '[height, width]', 2), counts: arr(int(), 'Run lengths, column-major, starting with background') },
    'An uncompressed run-length encoded mask',
  ),
  CocoRleMaskDto: obj(
    { size: arr(int(), '[height, width]', 2), counts: str('COCO compressed RLE string') },
    'A COCO compressed run-length encoded mask',
  ),
  InferTimingsDto: obj({ decode: num(), preprocess: num(), postprocess: num(), total: num() }, 'Milliseconds'),

  PrimitiveDto: obj(
    {
      primitive_class: str('The detector label'),
      probability: num('Confidence, 0..1'),
      x: num('Centre x, normalized to [0, 1] of the width'),
      y: num('Centre y, normalized to [0, 1] of the height'),
      width: num('Box width along its own axis, normalized'),
      height: num('Box height along its own axis, normalized'),
      rotation: num('Angle / π: the box rotation, 0 for an axis-aligned detector'),
      corners: arr(point('[x, y]'), 'The oriented box corners, normalized', 4),
      corners_px: arr(point('[x, y]'), 'The oriented box corners, in pixels', 4),
    },
    'A detected primitive with its oriented box',
  ),
  PredictionResultDto: obj(
    {
      image_class: nullable(str('The scene; null when no primitive was detected')),
      class_probs: nullable({ type: 'object', additionalProperties: num(), description: 'Probability per scene' }),
      primitives: arr(ref('PrimitiveDto')),
      count: int(),
      detection_model: str(),
      classification_model: str(),
      image: ref('ImageSizeDto'),
      note: nullable(str()),
    },
    'A prediction task: the primitives found and the scene classified from them',
  ),

  BallCalibrationDto: obj({
    cx: num(),
    cy: num(),
    radius_px: num(),
    score: num(),
    method: { type: 'string', enum: ['red-pixels', 'mask'] },
  }),
  FragmentRowDto: obj({
    id: int('1-based, in input order among the fragments (the ball is not counted)'),
    score: num(),
    box_xyxy: quad('x1, y1, x2, y2 in pixels'),
    area_px: int(),
    diameter_px: num(),
    diameter: num('In the unit (equal to diameter_px when uncalibrated)'),
  }),
  FragmentsResultDto: obj(
    {
      calibrated: { type: 'boolean' },
      unit: { type: 'string', enum: [...LENGTH_UNITS] },
      scale: num('Units per pixel; 1 when the unit is px'),
      ball: nullable(ref('BallCalibrationDto')),
      warning: nullable(str()),
      count: int(),
      diameters: arr(num(), 'Sorted ascending, in unit'),
      d10: nullable(num()),
      d50: nullable(num()),
      d90: nullable(num()),
      min: nullable(num()),
      max: nullable(num()),
      mean: nullable(num()),
      fragments: arr(ref('FragmentRowDto')),
      model: str(),
      real_radius: nullable(num()),
      requested_unit: { type: 'string', enum: [...LENGTH_UNITS] },
      conf: num(),
      iou: num(),
      image: ref('ImageSizeDto'),
    },
    'A fragment analysis: sizes, D10/D50/D90, the calibration and one row per fragment',
  ),

  DetectorDetectionDto: obj(
    {
      class: str(),
      class_id: int(),
      score: num(),
      box_xyxy: quad('Axis-aligned detectors: x1, y1, x2, y2 in pixels'),
      cx: num('Oriented detectors: the centre, in pixels'),
      cy: num(),
      w: num(),
      h: num(),
      angle: num('Radians'),
      corners: arr(point('[x, y]'), 'Oriented detectors: the corners, in pixels', 4),
    },
    'A detection: box_xyxy for an axis-aligned detector, or cx/cy/w/h/angle/corners for an oriented one',
    ['box_xyxy', 'cx', 'cy', 'w', 'h', 'angle', 'corners'],
  ),
  SegmenterDetectionDto: obj({
    class: str(),
    class_id: int(),
    score: num(),
    box_xyxy: quad('x1, y1, x2, y2 in pixels'),
    area: int(),
    mask: ref('RleMaskDto'),
  }),
  ModelInferDetectorResultDto: inferResult('detector', {
    count: int(),
    detections: arr(ref('DetectorDetectionDto')),
  }),
  ModelInferSegmenterResultDto: inferResult('segmenter', {
    count: int(),
    detections: arr(ref('SegmenterDetectionDto')),
  }),
  ModelInferSamResultDto: inferResult('sam', {
    mask_index: int(),
    score: num(),
    area: int(),
    bbox_xywh: quad('x, y, width, height'),
    mask: ref('RleMaskDto'),
  }),
  ModelInferClassifierResultDto: inferResult('classifier', {
    class: str('The most probable class (Ultralytics classify models)'),
    score: num(),
    top: arr(obj({ class: str(), class_id: int(), score: num() }), 'The five most probable classes, best first'),
  }),
  ModelInferImageToImageResultDto: inferResult('image-to-image', {
    options: arr(obj({ style: str(), artifact_id: { type: 'string', format: 'uuid' } })),
  }),
  ModelInferResultDto: {
    oneOf: ['detector', 'segmenter', 'classifier', 'sam', 'image-to-image'].map((k) => ref(inferName(k))),
    discriminator: {
      propertyName: 'kind',
      mapping: Object.fromEntries(['detector', 'segmenter', 'classifier', 'sam', 'image-to-image'].map((k) => [k, ref(inferName(k)).$ref])),
    },
    description: "A direct model inference: what the model's kind produced",
  },

  ProjectDetectionDto: obj(
    {
      class: str(),
      confidence: num(),
      bbox_xyxy_abs: quad('x1, y1, x2, y2 in pixels'),
      corners: arr(point('[x, y]'), 'Oriented detectors: the corners, in pixels', 4),
      angle: num('Oriented detectors: radians'),
    },
    undefined,
    ['corners', 'angle'],
  ),
  ProjectDetectResultDto: obj({
    model: str(),
    count: int(),
    detections: arr(ref('ProjectDetectionDto')),
    image: ref('ImageSizeDto'),
    annotated_artifact_id: { type: 'string', format: 'uuid' },
  }),

  // The mask, per-prompt, auto-mask and object schemas are the synchronous segmentation routes' DTOs: a stored result
  // holds the same objects.
  SegmentPromptMasksDto: obj(
    {
      model: str(),
      width: int(),
      height: int(),
      results: arr(ref('SegmentPromptResultDto'), 'Masks per prompt set'),
      visualization_artifact_id: nullable({ type: 'string', format: 'uuid' }),
    },
    'Prompt segmentation (points or boxes)',
  ),
  SegmentAutoMasksDto: obj(
    {
      model: str(),
      width: int(),
      height: int(),
      output_mode: { type: 'string', enum: ['binary_mask', 'uncompressed_rle', 'coco_rle'] },
      segmentation_format: { type: 'string', enum: ['uncompressed_rle', 'coco_rle'] },
      count: int(),
      masks: arr(ref('SegmentAutoMaskDto')),
      timings_ms: ref('SegmentAutoTimingsDto'),
    },
    'Automatic segmentation: every mask SAM finds (POST /segment/auto answers the same with the job_id)',
  ),
  ImageEmbeddingResultDto: obj(
    {
      model: str(),
      version: str(),
      sha256: str('Of the image file the embedding was computed from'),
      data_key: str(),
      shape: arr(int(), 'image_embeddings dims, e.g. [1, 256, 64, 64]'),
      dtype: { type: 'string', enum: ['float32'] },
      byte_length: int(),
      width: int(),
      height: int(),
      input_size: int(),
      scale: num(),
      resized_width: int(),
      resized_height: int(),
      cache_hit: { type: 'boolean' },
    },
    'A SAM image embedding, stored for decoding on the client',
  ),
  BoothOptionResultDto: obj({ index: int(), artifact_id: { type: 'string', format: 'uuid' }, style: str(), content_type: str() }),
  BoothXrayResultDto: obj(
    { source: { type: 'string', enum: ['internal', 'external'] }, model: nullable(str()), options: arr(ref('BoothOptionResultDto')) },
    'The X-ray result options of one booth photo',
  ),
  QrBatchResultDto: obj(
    {
      batch_id: { type: 'string', format: 'uuid' },
      codes: int(),
      pages: int(),
      pdf_artifact_id: { type: 'string', format: 'uuid' },
      pdf_bytes: int(),
      render_ms: num(),
    },
    'A rendered QR batch PDF',
  ),
};

function inferName(kind: string): string {
  const camel = kind.replace(/(^|-)([a-z])/g, (_m, _d: string, c: string) => c.toUpperCase());
  return `ModelInfer${camel}ResultDto`;
}

function inferResult(kind: string, properties: Record<string, Schema>): SchemaObject {
  return obj(
    {
      model: str(),
      kind: { type: 'string', enum: [kind] },
      width: int(),
      height: int(),
      ...properties,
      timings_ms: ref('InferTimingsDto'),
    },
    `model.infer on a model of kind ${kind}`,
  );
}

/** The result schema of each job type. */
export const JOB_RESULT_SCHEMA: Record<JobType, string> = {
  'qr.batch': 'QrBatchResultDto',
  'model.infer': 'ModelInferResultDto',
  'task.predict': 'PredictionResultDto',
  'task.fragments': 'FragmentsResultDto',
  'project.detect': 'ProjectDetectResultDto',
  'segment.prompt': 'SegmentPromptMasksDto',
  'segment.auto': 'SegmentAutoMasksDto',
  'image.embedding': 'ImageEmbeddingResultDto',
  'segment.objects': 'SegmentObjectsResultDto',
  'booth.xray': 'BoothXrayResultDto',
};

/** The parameters a task of each type ran with (TaskDto.params: models by name). */
const TASK_PARAMS: Record<string, Record<string, Schema>> = {
  prediction: {
    params: obj({ detection_model: str(), classification_model: str(), conf: num(), iou: num() }, 'The parameters it ran with'),
  },
  fragments: {
    params: obj(
      { model: str(), real_radius: nullable(num()), unit: { type: 'string', enum: [...LENGTH_UNITS] }, conf: num(), iou: num() },
      'The parameters it ran with',
    ),
  },
};

/** The result schema of each task type. */
export const TASK_RESULT_SCHEMA = { prediction: 'PredictionResultDto', fragments: 'FragmentsResultDto' } as const;

const pascal = (s: string): string => s.replace(/(^|[-._])([a-z])/g, (_m, _d: string, c: string) => c.toUpperCase());

/**
 * Replaces the DTO schema `base` (which has `type` and a free-form `result`) by a oneOf of one variant per type, each
 * with `type` fixed to that type and `result` typed, discriminated on `type`. The base keeps its name, so every
 * response that refers to it is discriminated.
 */
function discriminate(
  doc: OpenAPIObject,
  base: string,
  results: Record<string, string>,
  variantName: (type: string) => string,
  extra: Record<string, Record<string, Schema>> = {},
): void {
  const schemas = doc.components!.schemas!;
  const baseSchema = schemas[base] as SchemaObject | undefined;
  if (!baseSchema?.properties?.['type'] || !baseSchema.properties['result']) {
    throw new Error(`OpenAPI: ${base} has no type and result to discriminate`);
  }
  const resultProp = baseSchema.properties['result'] as SchemaObject;
  const mapping: Record<string, string> = {};
  for (const [type, resultSchema] of Object.entries(results)) {
    const name = variantName(type);
    if (schemas[name]) throw new Error(`OpenAPI: ${name} is already a component schema`);
    const target = schemas[resultSchema] as SchemaObject | undefined;
    const result: Schema = resultProp.nullable
      ? { ...(target?.discriminator ? nullableUnion(target) : nullable(ref(resultSchema))), description: resultProp.description }
      : ref(resultSchema);
    schemas[name] = {
      ...baseSchema,
      properties: { ...baseSchema.properties, ...extra[type], type: { type: 'string', enum: [type] }, result },
    };
    mapping[type] = ref(name).$ref;
  }
  schemas[base] = {
    oneOf: Object.values(mapping).map(($ref) => ({ $ref })),
    discriminator: { propertyName: 'type', mapping },
    ...(baseSchema.description ? { description: baseSchema.description } : {}),
  };
}

/** Adds the result schemas and discriminates the DTOs that carry a result. */
export function addResultSchemas(doc: OpenAPIObject): OpenAPIObject {
  doc.components ??= {};
  doc.components.schemas ??= {};
  for (const [name, schema] of Object.entries(RESULT_SCHEMAS)) {
    if (doc.components.schemas[name]) throw new Error(`OpenAPI: ${name} is already a component schema`);
    doc.components.schemas[name] = schema;
  }
  const jobResults = Object.fromEntries(ALL_JOB_TYPES.map((t) => [t, JOB_RESULT_SCHEMA[t]]));
  discriminate(doc, 'TaskResultDto', TASK_RESULT_SCHEMA, (t) => `${pascal(t)}TaskResultDto`);
  discriminate(doc, 'TaskDto', TASK_RESULT_SCHEMA, (t) => `${pascal(t)}TaskDto`, TASK_PARAMS);
  discriminate(doc, 'JobResultDto', jobResults, (t) => `${pascal(t)}JobResultDto`);
  discriminate(doc, 'JobDto', jobResults, (t) => `${pascal(t)}JobDto`);
  return doc;
}
