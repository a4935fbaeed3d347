import { Global, type MiddlewareConsumer, Module, type NestModule, RequestMethod } from '@nestjs/common';
import { MikroOrmModule } from '@mikro-orm/nestjs';
import { loadConfig } from '@aperture/config/config.js';
import { ormOptions } from './orm-options.js';
import { LazyRequestContextMiddleware } from './request-context.middleware.js';
import { SchemaService } from './schema.service.js';

@Global()
@Module({
  imports: [
    // The factory reads the validated config itself (no `inject`), so MikroORM does not ask for a fixed driver:
    // the dialect (SQLite or PostgreSQL) is chosen at run time from DATABASE_URL.
    MikroOrmModule.forRootAsync({
      // The request context is this module's middleware (a fork made on first use), not MikroORM's (one per request).
      useFactory: () => ({ ...ormOptions(loadConfig()), registerRequestContext: false }),
    }),
  ],
  providers: [SchemaService],
  exports: [SchemaService],
})
export class DatabaseModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(LazyRequestContextMiddleware).forRoutes({ path: '{*all}', method: RequestMethod.ALL });
  }
}
