/** `GET /openapi.json`: the API's OpenAPI 3.1 document (public, no token), generated once from the zod schemas. */
import { openApiDocument } from '@batchapi/api';
import { Controller, Get } from '@nestjs/common';

@Controller()
export class OpenApiController {
  private readonly document = openApiDocument();

  @Get('openapi.json')
  get(): Record<string, unknown> {
    return this.document;
  }
}
