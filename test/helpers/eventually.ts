/** Resolves once `check` holds, trying every 20 ms for up to 5 s; for what the server does after answering (counters, closing a stream). */
export async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  for (const deadline = Date.now() + 5000; Date.now() < deadline; ) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`never happened: ${what}`);
}
