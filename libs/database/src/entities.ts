import { ApiKey } from './entities/api-key.entity.js';
import { BoothSubmission, CarouselEntry } from './entities/booth.entity.js';
import { Batch } from './entities/batch.entity.js';
import { Image } from './entities/image.entity.js';
import { InstalledModel } from './entities/installed-model.entity.js';
import { Job, JobArtifact } from './entities/job.entity.js';
import { Project } from './entities/project.entity.js';
import { QrBatch, QrCode } from './entities/qr.entity.js';
import { RefreshToken } from './entities/refresh-token.entity.js';
import { User } from './entities/user.entity.js';

/** Every entity of the schema; the migrations are generated from exactly this list. */
export const ENTITIES = [
  User,
  RefreshToken,
  ApiKey,
  Job,
  JobArtifact,
  QrBatch,
  QrCode,
  Project,
  Image,
  Batch,
  BoothSubmission,
  CarouselEntry,
  InstalledModel,
];
