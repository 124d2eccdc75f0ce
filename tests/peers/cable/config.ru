# A standalone Action Cable server (no Rails application): the Rails guide's ChatChannel, one
# stream per room, messages broadcast to the room as they are received. In-process async adapter.
require "action_cable"
require "logger"

class ApplicationCable < ActionCable::Connection::Base; end
module ApplicationCableChannel; end

class ChatChannel < ActionCable::Channel::Base
  def subscribed
    stream_from "chat_#{params[:room]}"
  end

  def receive(data)
    ActionCable.server.broadcast("chat_#{params[:room]}", data)
  end
end

ActionCable.server.config.cable = { "adapter" => "async" }
ActionCable.server.config.connection_class = -> { ApplicationCable }
ActionCable.server.config.disable_request_forgery_protection = true
ActionCable.server.config.logger = Logger.new(nil)
ActionCable.server.config.worker_pool_size = 4

run ActionCable.server
