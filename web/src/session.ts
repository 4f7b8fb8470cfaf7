const STORAGE_KEY = 'inferline.session';

/** The signed-in user: the token comes from POST /users, which shows it only once. */
export interface Session {
  userId: string;
  username: string;
  token: string;
}

/**
 * Keeps the signed-in user in `localStorage`, so that a reload or a new tab of the same origin
 * stays signed in, and notifies the panels when the user signs in or out.
 */
export class SessionStore {
  private current: Session | null = readStoredSession();
  private readonly listeners = new Set<(session: Session | null) => void>();

  get session(): Session | null {
    return this.current;
  }

  signIn(session: Session): void {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(session));
    this.change(session);
  }

  signOut(): void {
    localStorage.removeItem(STORAGE_KEY);
    this.change(null);
  }

  onChange(listener: (session: Session | null) => void): void {
    this.listeners.add(listener);
  }

  private change(session: Session | null): void {
    this.current = session;
    for (const listener of this.listeners) listener(session);
  }
}

// A stored value that another version of the page or a person edited is dropped, not trusted.
function readStoredSession(): Session | null {
  const stored = localStorage.getItem(STORAGE_KEY);
  if (stored === null) return null;
  try {
    const value = JSON.parse(stored) as Partial<Session>;
    if (typeof value.userId === 'string' && typeof value.username === 'string' && typeof value.token === 'string') {
      return { userId: value.userId, username: value.username, token: value.token };
    }
  } catch {
    // Not JSON: dropped below.
  }
  localStorage.removeItem(STORAGE_KEY);
  return null;
}
