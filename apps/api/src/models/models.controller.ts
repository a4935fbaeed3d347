import {
  applyDecorators,
  Body,
  Controller,
  Get,
  HttpStatus,
  Param,
  Post,
  Query,
  Req,
  Res,
  StreamableFile,
  UploadedFile,
  UseInterceptors,
} from '@nestjs/common';
import { FileInterceptor } from '@nestjs/platform-express';
import { JobResultDto } from '../jobs/jobs.dto.js';
import { JOB_RESULT, JobAnswer, JobCreatingRoute } from '../jobs/prefer-wait.js';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiBody,
  ApiConsumes,
  ApiPayloadTooLargeResponse,
  ApiForbiddenResponse,
  ApiHeader,
  ApiParam,
  ApiProduces,
  ApiResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiServiceUnavailableResponse,
  ApiTags,
  ApiUnprocessableEntityResponse,
} from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { AdminOnly, Authenticated, CurrentPrincipal, type Principal } from '@aperture/common/auth.decorators.js';
import { notModified } from '@aperture/common/etag.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import {
  ModelControlQueryDto,
  ModelControlResponseDto,
  ModelDetailDto,
  ModelInferAcceptedDto,
  ModelInferFormDto,
  ModelListQueryDto,
  ModelStatsResponseDto,
  ModelSummaryDto,
} from './models.dto.js';
import type { UploadedImage } from '../images/images.service.js';
import { ModelCatalogueService } from './model-catalogue.service.js';
import { ModelControlService } from './model-control.service.js';
import { ModelFilesService } from './model-files.service.js';
import { ModelInferenceService } from './model-inference.service.js';
import { UPLOAD_413 } from '../uploads/upload-files.js';

/** Admin-only load/unload: waits up to wait_ms for every worker, 200 when all finished, 202 otherwise. */
function ModelControlRoute(summary: string, description: string): MethodDecorator {
  return applyDecorators(
    AdminOnly(),
    ApiOperation({ summary, description: `${description} Waits up to wait_ms for every worker; 202 if some had not finished by then.` }),
    ApiOkResponse({ type: ModelControlResponseDto, description: 'Every worker finished' }),
    ApiAcceptedResponse({ type: ModelControlResponseDto, description: 'Not every worker had finished within wait_ms' }),
    ApiForbiddenResponse({ type: ProblemDto, description: 'Admins only' }),
    ApiNotFoundResponse({ type: ProblemDto, description: 'Model {name} does not exist.' }),
    ApiServiceUnavailableResponse({ type: ProblemDto, description: 'No worker is running' }),
  );
}

@ApiTags('models')
@Authenticated()
@Controller('models')
export class ModelsController {
  constructor(
    private readonly catalogue: ModelCatalogueService,
    private readonly controlService: ModelControlService,
    private readonly intake: ModelInferenceService,
    private readonly files: ModelFilesService,
  ) {}

  @Get()
  @ApiOperation({ summary: 'List models', description: 'Every model of the manifest with its state on each live worker.' })
  @ApiOkResponse({ type: [ModelSummaryDto] })
  listModels(@Query() q: ModelListQueryDto): Promise<ModelSummaryDto[]> {
    return this.catalogue.list(q.kind);
  }

  @Get(':name')
  @ApiOperation({
    summary: 'Model detail',
    description: 'Adds the files with their inputs, outputs and metadata_props, the pre-processing and the held-out metrics.',
  })
  @ApiOkResponse({ type: ModelDetailDto })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Model {name} does not exist.' })
  getModel(@Param('name') name: string): Promise<ModelDetailDto> {
    return this.catalogue.detail(name);
  }

  @Get(':name/stats')
  @ApiOperation({
    summary: 'Model statistics',
    description: 'Triton-style counts and cumulative/mean milliseconds per phase, per worker and in total.',
  })
  @ApiOkResponse({ type: ModelStatsResponseDto })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Model {name} does not exist.' })
  getModelStats(@Param('name') name: string): Promise<ModelStatsResponseDto> {
    return this.catalogue.stats(name);
  }

  @Get(':name/files/:file')
  @ApiOperation({
    summary: 'Download a model file',
    description:
      "One of the model's ONNX files by role: a SAM model's decoder (with GET /images/{id}/embedding a client decodes prompts " +
      "itself) or encoder, another model's model. ETag is the file's sha256, so If-None-Match answers 304.",
  })
  @ApiParam({ name: 'file', enum: ['decoder', 'encoder', 'model'], description: 'The file by role' })
  @ApiProduces('application/octet-stream')
  @ApiHeader({ name: 'If-None-Match', required: false })
  @ApiOkResponse({ description: 'The ONNX file', schema: { type: 'string', format: 'binary' } })
  @ApiResponse({ status: 304, description: 'Not modified' })
  @ApiNotFoundResponse({
    type: ProblemDto,
    description: 'Model {name} does not exist, or it has no such file (only SAM models have a decoder; the detail lists its files)',
  })
  async getModelFile(
    @Param('name') name: string,
    @Param('file') file: string,
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ): Promise<StreamableFile | undefined> {
    const f = await this.files.file(name, file);
    if (notModified(req, res, `"${f.sha256}"`)) return undefined;
    return new StreamableFile(await f.open(), {
      type: 'application/octet-stream',
      length: f.sizeBytes,
      disposition: `attachment; filename="${f.name}"`,
    });
  }

  @Post(':name/infer')
  @UseInterceptors(FileInterceptor('image'))
  @ApiConsumes('multipart/form-data')
  @ApiBody({ type: ModelInferFormDto })
  @ApiOperation({
    summary: 'Run a model on an image (queued)',
    description:
      'Queues one run on a worker: detections for a detector (oriented boxes with corners for OBB), ' +
      'instance masks as COCO RLE for a segmenter, a mask for a click or a box for SAM, ' +
      'the result options as PNG artifacts for an image-to-image model. Poll the job; its result holds the output.',
  })
  @JobCreatingRoute({ accepted: ModelInferAcceptedDto, result: JobResultDto, resultDescription: JOB_RESULT })
  @ApiBadRequestResponse({
    type: ProblemDto,
    description: 'Missing or unreadable image (IMAGE_VALIDATION_ERROR), bad options, or a model that does not take images',
  })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Model {name} does not exist.' })
  @ApiPayloadTooLargeResponse({ type: ProblemDto, description: `Larger than IMAGE_MAX_BYTES, or ${UPLOAD_413}` })
  async inferModel(
    @Param('name') name: string,
    @UploadedFile() file: UploadedImage | undefined,
    @Body() form: ModelInferFormDto,
    @CurrentPrincipal() p: Principal,
  ): Promise<JobAnswer<ModelInferAcceptedDto, JobResultDto>> {
    const accepted = await this.intake.infer(name, file, form, p);
    return JobAnswer.ofJob(accepted, accepted.job_id);
  }

  @Post(':name/load')
  @ModelControlRoute('Load (or reload) a model on every worker', 'A reload that fails keeps the previous version serving.')
  @ApiUnprocessableEntityResponse({
    type: ProblemDto,
    description: 'MODEL_ERROR: a worker could not load it (the reason names the mismatch)',
  })
  loadModel(
    @Param('name') name: string,
    @Query() q: ModelControlQueryDto,
    @Res({ passthrough: true }) res: Response,
  ): Promise<ModelControlResponseDto> {
    return this.control('load', name, q, res);
  }

  @Post(':name/unload')
  @ModelControlRoute('Unload a model on every worker', 'Releases the native sessions.')
  unloadModel(
    @Param('name') name: string,
    @Query() q: ModelControlQueryDto,
    @Res({ passthrough: true }) res: Response,
  ): Promise<ModelControlResponseDto> {
    return this.control('unload', name, q, res);
  }

  private async control(op: 'load' | 'unload', name: string, q: ModelControlQueryDto, res: Response): Promise<ModelControlResponseDto> {
    const r = await this.controlService.control(op, this.catalogue.entry(name), q.wait_ms);
    res.status(r.settled ? HttpStatus.OK : HttpStatus.ACCEPTED);
    return r;
  }
}
