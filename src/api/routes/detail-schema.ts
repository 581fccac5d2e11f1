/**
 * One entry of an answer's `details` (SPEC §2): where in the request (`path`) and what of it
 * (`message`). The same shape as an error's details, used by the answers that carry warnings: the
 * keys of a definition or request Herald ignored.
 */
import { Type } from "typebox";

export const Detail = Type.Object({ path: Type.String(), message: Type.String() });
