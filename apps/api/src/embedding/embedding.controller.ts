import { Controller, Get, HttpStatus, Param, Query, Req, Res, StreamableFile } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiHeader,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiResponse,
  ApiTags,
  ApiUnprocessableEntityResponse,
} from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { Authenticated, CurrentPrincipal, type Principal } from '@aperture/common/auth.decorators.js';
import { notModified } from '@aperture/common/etag.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import type { ImageEmbeddingResult } from '@aperture/queue/job-registry.js';
import { JobAcceptedDto, jobAccepted } from '../jobs/job-answers.js';
import { EMBEDDING_HEADERS, EMBEDDING_MAX_WAIT_MS, EmbeddingQueryDto } from './embedding.dto.js';
import { EmbeddingService } from './embedding.service.js';

const headerDocs = Object.fromEntries(
  Object.entries(EMBEDDING_HEADERS).map(([k, description]) => [k, { description, schema: { type: 'string' } }]),
);

/** The headers that describe the embedding in the body. */
function embeddingHeaders(m: ImageEmbeddingResult): Record<keyof typeof EMBEDDING_HEADERS, string> {
  return {
    'X-Embedding-Shape': m.shape.join(','),
    'X-Embedding-Dtype': m.dtype,
    'X-Embedding-Byte-Order': 'little-endian',
    'X-Model-Name': m.model,
    'X-Model-Version': m.version,
    'X-Image-Width': String(m.width),
    'X-Image-Height': String(m.height),
    'X-Input-Size': String(m.input_size),
    'X-Input-Scale': String(m.scale),
    'X-Resized-Width': String(m.resized_width),
    'X-Resized-Height': String(m.resized_height),
  };
}

@ApiTags('images')
@Authenticated()
@Controller('images')
export class EmbeddingController {
  constructor(private readonly embeddings: EmbeddingService) {}

  @Get(':id/embedding')
  @ApiOperation({
    summary: 'SAM image embedding of one of your images (for running the decoder on the client)',
    description:
      "The image encoder's output as raw little-endian float32 (image_embeddings, e.g. [1, 256, 64, 64]), with headers giving " +
      'its shape, the model and version, the image size and the encoder input size and scale: with the decoder file ' +
      '(GET /models/{name}/files/decoder) a client decodes any prompt itself, as the Segment Anything demo does. ' +
      'Computed once per image file and model version by a worker (an image.embedding job; waits up to wait_ms, ' +
      `by default ${EMBEDDING_MAX_WAIT_MS / 1000} s, else 202 with the job: GET again once it completed), then served from ` +
      'storage. ETag names the file, model and version.',
  })
  @ApiProduces('application/octet-stream')
  @ApiHeader({ name: 'If-None-Match', required: false })
  @ApiOkResponse({ description: 'The float32 embedding', schema: { type: 'string', format: 'binary' }, headers: headerDocs })
  @ApiAcceptedResponse({ type: JobAcceptedDto, description: 'Still computing: GET the embedding again once the job completed' })
  @ApiResponse({ status: 304, description: 'Not modified' })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'A model that is not an installed SAM model (the detail lists them)' })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Image with id {id} does not exist.' })
  @ApiUnprocessableEntityResponse({ type: ProblemDto, description: 'MODEL_ERROR: the job failed (the detail says why)' })
  async getImageEmbedding(
    @Param('id') id: string,
    @Query() q: EmbeddingQueryDto,
    @CurrentPrincipal() p: Principal,
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ): Promise<StreamableFile | JobAcceptedDto | undefined> {
    const answer = await this.embeddings.embedding(id, q, p);
    if (answer.job) {
      res.status(HttpStatus.ACCEPTED);
      res.setHeader('Retry-After', '5');
      return jobAccepted(answer.job);
    }
    const m = answer.meta;
    for (const [k, v] of Object.entries(embeddingHeaders(m))) res.setHeader(k, v);
    if (notModified(req, res, `"${m.sha256}-${m.model}-${m.version}"`)) return undefined;
    return new StreamableFile(await this.embeddings.read(m), {
      type: 'application/octet-stream',
      length: m.byte_length,
      disposition: `attachment; filename="${id}-${m.model}.embedding.f32"`,
    });
  }
}
