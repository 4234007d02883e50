import type { MessageService } from '../../services/message.service.ts';
import { membershipHintOf } from '../socket-rooms.ts';
import type { ChatSocket } from '../types.ts';

/** `send-message` (PROTOCOL §4): the message service validates, stores and broadcasts. */
export function sendMessageHandler(socket: ChatSocket, messageService: MessageService) {
  const hint = membershipHintOf(socket);
  return (payload: unknown) => messageService.send(socket.data.user, payload, hint);
}
