/**
 * The API's responses as plain values, and PyBal's content negotiation.
 */

export const JSON_TYPE = 'application/json';
/** PyBal answers exactly `text/plain`; kept for clients that compare it. */
export const TEXT_TYPE = 'text/plain';

export interface ApiResponse {
  readonly status: number;
  readonly contentType: string;
  /** The text, or (a large one) its chunks in order, as text or bytes, written one at a time. */
  readonly body: string | readonly (string | Buffer)[];
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * Told once the body's chunks are no longer needed: `reusable` when no
   * write of them can still be under way (every byte written out, or none
   * begun: HEAD, or the client gone before the answer), false when the
   * writing was abandoned part-way.
   */
  readonly written?: (reusable: boolean) => void;
}

/**
 * True when the Accept header lists `application/json` as one of its media
 * ranges (parameters and case ignored; `q=0` means "not acceptable").
 * PyBal compares the raw list items exactly; this accepts what it accepted
 * and also `application/json; q=0.9` or `Application/JSON`.
 */
export function wantsJson(accept: string | undefined): boolean {
  if (!accept) return false;
  return accept.split(',').some((range) => {
    const [type = '', ...params] = range.split(';').map((part) => part.trim().toLowerCase());
    if (type !== JSON_TYPE) return false;
    const q = params.find((p) => /^q\s*=/.test(p));
    return q === undefined || Number(q.replace(/^q\s*=\s*/, '')) > 0;
  });
}

export function jsonResponse(status: number, value: unknown): ApiResponse {
  return { status, contentType: JSON_TYPE, body: JSON.stringify(value) };
}

export function textResponse(status: number, text: string): ApiResponse {
  return { status, contentType: TEXT_TYPE, body: text };
}

/** One value in both of PyBal's shapes; `json` picks which. */
export function negotiated(json: boolean, status: number, value: unknown, text: string): ApiResponse {
  return json ? jsonResponse(status, value) : textResponse(status, text);
}

const NOT_FOUND = 'The desired url was not found';

export function notFound(json: boolean): ApiResponse {
  return negotiated(json, 404, { error: NOT_FOUND }, NOT_FOUND);
}

/** The API is read-only (the control socket's POST paths aside: `allow` and `message` say what is allowed there). */
export function methodNotAllowed(json: boolean, allow = 'GET, HEAD', message = 'Method not allowed: the API is read-only (GET, HEAD)'): ApiResponse {
  return { ...negotiated(json, 405, { error: message }, `${message}\n`), headers: { allow } };
}
