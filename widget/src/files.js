// Choosing files before sending (spec F1, F2, E2, E3): which picked files
// join the review list and why the others do not. Pure, so it is unit-tested
// without a browser; the server enforces the same limits whatever happens here.

/**
 * `count` files are already in the list; `files` were just picked; `limits`
 * as returned by limitsOf (limits.js).
 * Returns { add, tooMany, tooBig, maxBytes }: more than the batch limit in
 * total refuses the whole pick (tooMany = the limit); files over the size
 * limit are left out one by one (tooBig).
 */
export function review(count, files, limits) {
  const maxFiles = limits.max_files_per_batch;
  const maxBytes = limits.max_file_bytes;
  if (count + files.length > maxFiles) return { add: [], tooMany: maxFiles, tooBig: [], maxBytes };
  return {
    add: files.filter((f) => f.size <= maxBytes),
    tooMany: 0,
    tooBig: files.filter((f) => f.size > maxBytes),
    maxBytes,
  };
}
