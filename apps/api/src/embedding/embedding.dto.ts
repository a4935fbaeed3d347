import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, IsString, Max, Min, MaxLength } from 'class-validator';

/** The longest GET /images/{id}/embedding waits for the worker (and its default). */
export const EMBEDDING_MAX_WAIT_MS = 60_000;

/** GET /images/{id}/embedding?model= */
export class EmbeddingQueryDto {
  @ApiPropertyOptional({ description: 'A SAM model by name or id; default: the first SAM model of the manifest', example: 'sam-tiny' })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  model?: string;

  @ApiPropertyOptional({
    description:
      'When the embedding is not stored yet: wait up to this many ms for the worker before answering 202 with the job; 0 answers at once',
    default: EMBEDDING_MAX_WAIT_MS,
    minimum: 0,
    maximum: EMBEDDING_MAX_WAIT_MS,
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(EMBEDDING_MAX_WAIT_MS)
  wait_ms: number = EMBEDDING_MAX_WAIT_MS;
}

/** The response headers that describe an embedding, as a browser client of the SAM decoder needs them. */
export const EMBEDDING_HEADERS = {
  'X-Embedding-Shape': 'The dims of image_embeddings, comma-separated (e.g. 1,256,64,64)',
  'X-Embedding-Dtype': 'float32',
  'X-Embedding-Byte-Order': 'little-endian (the body is the raw float32 array)',
  'X-Model-Name': 'The SAM model that computed it',
  'X-Model-Version': "The model's manifest version",
  'X-Image-Width': "The image's width in pixels (after EXIF orientation); the decoder's orig_im_size is [height, width]",
  'X-Image-Height': "The image's height in pixels (after EXIF orientation)",
  'X-Input-Size': "The encoder's square input side (1024 for SAM)",
  'X-Input-Scale':
    "ResizeLongestSide's scale, input_size / max(width, height): multiply a click's pixel coordinates by it for point_coords",
  'X-Resized-Width': 'The image width inside the encoder input (the rest is padding)',
  'X-Resized-Height': 'The image height inside the encoder input',
} as const;
