import type { MessageService } from '../../services/message.service.ts';
import { SocketMembership } from '../socket-rooms.ts';
import type { ChatSocket } from '../types.ts';

/** `send-message` (PROTOCOL §4): the message service validates, stores and broadcasts. */
export function sendMessageHandler(messageService: MessageService) {
  return (socket: ChatSocket, payload: unknown) => messageService.send(socket.data.user, payload, new SocketMembership(socket));
}
