// A promise with a time limit — no VS Code API here.

/**
 * Resolve or reject as `work` does, or reject with `new Error(message)` after `ms`. The timer is
 * cleared as soon as either happens, so nothing is left pending once the answer is in.
 */
export function withTimeout<T>(work: PromiseLike<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([Promise.resolve(work), limit]).finally(() => clearTimeout(timer));
}
