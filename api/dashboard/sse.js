/*
 * Reads a text/event-stream body (from fetch, because EventSource cannot send an Authorization header):
 * blocks end with a blank line; `event:` names the event (default "message"), `data:` lines join with
 * newlines, lines starting with ':' are comments (the server's heartbeats).
 */

/** Parses one block; undefined for a comment-only block. */
export function parseBlock(block) {
  let event = 'message';
  const data = [];
  let fields = 0;
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    fields += 1;
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  return fields === 0 ? undefined : { event, data: data.join('\n') };
}

/** Calls onEvent({ event, data }) per block and onBytes() per chunk, until the stream ends (resolves) or breaks (rejects). */
export async function readEventStream(body, { onEvent, onBytes }) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onBytes?.();
    buffer = (buffer + value).replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const parsed = parseBlock(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (parsed) onEvent(parsed);
    }
  }
}
