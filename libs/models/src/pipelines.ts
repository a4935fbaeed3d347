import type { Provider } from '@nestjs/common';
import { AutoMaskPipeline } from './auto-mask.pipeline.js';
import { ClassificationPipeline } from './classification.pipeline.js';
import { DetectionPipeline } from './detection.pipeline.js';
import { embeddingCacheProvider } from './embedding-cache.js';
import { ImageToImagePipeline } from './image-to-image.pipeline.js';
import { ModelRunner } from './model-runner.js';
import { SamPipeline } from './sam.pipeline.js';

/**
 * The model pipelines, one service per model kind, for a module that also provides the ModelRegistry they run on
 * (the worker: its ModelAgent's registry):
 * - DetectionPipeline.detect / segmentInstances (YOLO detect, OBB, segment),
 * - ClassificationPipeline.classify (the scene from detected primitives),
 * - SamPipeline.samEncode / samEncodeCached / samDecode (an embedding per image, cached in the EmbeddingCache
 *   sized by SAM_EMBEDDING_CACHE_MB, batched prompt sets per embedding),
 * - AutoMaskPipeline.generate (SAM's automatic mask generator on a SAM model),
 * - ImageToImagePipeline.imageToImage (the X-ray effect).
 * Each owns the registry lookup, the model's statistics (one record per inference) and the mapping of model errors
 * to permanent job failures (ModelRunner).
 */
export const modelPipelineProviders: Provider[] = [
  ModelRunner,
  DetectionPipeline,
  ClassificationPipeline,
  embeddingCacheProvider,
  SamPipeline,
  AutoMaskPipeline,
  ImageToImagePipeline,
];
