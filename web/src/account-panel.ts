import { ApiError, Schema, callApi } from './api.js';
import { byId } from './dom.js';
import { clearError, showError, showMessage } from './error-view.js';
import { Session, SessionStore } from './session.js';

/** The 201 body of POST /users: the only response that contains the token. */
type NewUser = Schema<'UserWithToken'>;

/**
 * Sets up sign-up and sign-out, shows who is signed in, and checks that a token stored by an
 * earlier visit is still valid on this server.
 */
export function setUpAccountPanel(sessions: SessionStore): void {
  const form = byId('sign-up-form', HTMLFormElement);
  const username = byId('username', HTMLInputElement);
  const signUpButton = byId('sign-up', HTMLButtonElement);
  const signedIn = byId('signed-in', HTMLDivElement);
  const signedInAs = byId('signed-in-as', HTMLParagraphElement);
  const signOutButton = byId('sign-out', HTMLButtonElement);
  const errorRegion = byId('account-error', HTMLDivElement);

  const showSession = (session: Session | null) => {
    form.hidden = session !== null;
    signedIn.hidden = session === null;
    signedInAs.textContent = session ? `Signed in as ${session.username}` : '';
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearError(errorRegion);
    signUpButton.disabled = true;
    try {
      const request: Schema<'NewUser'> = { username: username.value.trim() };
      const { body } = await callApi<NewUser>('POST', '/users', { json: request });
      sessions.signIn({ userId: body.id, username: body.username, token: body.token });
      username.value = '';
      // The form is now hidden, so focus moves to the control that replaced it.
      signOutButton.focus();
    } catch (error) {
      showError(errorRegion, 'Could not sign up', error, { control: username });
    } finally {
      signUpButton.disabled = false;
    }
  });

  signOutButton.addEventListener('click', () => {
    clearError(errorRegion);
    sessions.signOut();
    username.focus();
  });

  sessions.onChange(showSession);
  showSession(sessions.session);
  void checkStoredSession(sessions, errorRegion);
}

// A token from an earlier visit is invalid when the server's database was replaced since then.
async function checkStoredSession(sessions: SessionStore, errorRegion: HTMLElement): Promise<void> {
  const session = sessions.session;
  if (!session) return;

  try {
    await callApi('GET', '/users/me', { token: session.token });
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      sessions.signOut();
      showMessage(errorRegion, 'Signed out', `this server no longer accepts the saved sign-in of ${session.username}, so sign up again`);
      return;
    }
    showError(errorRegion, 'Could not check the saved sign-in', error);
  }
}
