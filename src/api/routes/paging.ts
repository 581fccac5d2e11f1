/** The `page` query parameter of the paged lists. */
import { Type } from "typebox";

/**
 * The deepest page a list answers: an offset is page × pageSize rows read and skipped, and a page
 * past the bigint range failed in the database (a 500). Deeper lists are read with filters.
 */
export const MAX_PAGE = 100_000;

export const PageParameter = Type.Optional(
  Type.Integer({ minimum: 0, maximum: MAX_PAGE, default: 0, description: "0-based page" }),
);
