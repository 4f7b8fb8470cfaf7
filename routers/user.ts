import express from 'express';
import { z } from 'zod';
import { currentUser, requireUser } from '../middleware/auth';
import { rejectOtherMethods } from '../middleware/method-not-allowed';
import { requireJson } from '../middleware/require-json';
import { servicesOf } from '../services/app-services';
import { createUser, deleteUser, getUser, listUsers, rotateToken } from '../services/users';
import { idParams, pageQuery } from './common';

/** A username: 3 to 32 characters of a-z, 0-9, "_" and "-". */
export const username = z
  .string()
  .min(3, 'must be 3 to 32 characters')
  .max(32, 'must be 3 to 32 characters')
  .regex(/^[a-z0-9_-]+$/, 'may contain only a-z, 0-9, "_" and "-"');

/** Body of POST /users. */
export const newUserBody = z.strictObject({ username }).meta({ id: 'NewUser' });

/** Routes under /users: sign-up, the caller (read, delete, new token), one user, and the list of users. */
export const userRouter = express.Router();

const users = userRouter.route('/');
users.post(requireJson, function createUserRoute(req, res) {
  const { username } = newUserBody.parse(req.body ?? {});
  const user = createUser(servicesOf(req).db, username);
  res.status(201).location(`/users/${user.id}`).json(user);
});
users.get(function listUsersRoute(req, res) {
  const { limit, offset } = pageQuery.parse(req.query);
  res.json(listUsers(servicesOf(req).db, limit, offset));
});
users.all(rejectOtherMethods(users));

const me = userRouter.route('/me');
me.get(requireUser, function getCallerRoute(req, res) {
  res.json(currentUser(req));
});
me.delete(requireUser, function deleteCallerRoute(req, res) {
  deleteUser(servicesOf(req).db, currentUser(req).id);
  res.status(204).end();
});
me.all(rejectOtherMethods(me));

const token = userRouter.route('/me/token');
token.post(requireUser, function rotateTokenRoute(req, res) {
  res.json(rotateToken(servicesOf(req).db, currentUser(req).id));
});
token.all(rejectOtherMethods(token));

const one = userRouter.route('/:id');
one.get(function getUserRoute(req, res) {
  const { id } = idParams.parse(req.params);
  res.json(getUser(servicesOf(req).db, id));
});
one.all(rejectOtherMethods(one));
