#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Starts a detached OS thread. Blocking librdkafka calls run on such threads, never on Swift's cooperative pool.
enum PollThread {
    /// Boxes the thread's body so that it can cross `pthread_create`'s `void *` argument.
    private final class Body: Sendable {
        let run: @Sendable () -> Void

        init(run: @escaping @Sendable () -> Void) {
            self.run = run
        }
    }

    /// Runs `body` on a new detached thread; `name` is used in errors.
    ///
    /// - Throws: ``KafkaError`` when the system cannot start another thread.
    static func start(name: String, _ body: @escaping @Sendable () -> Void) throws {
        // The retained box is released by the thread itself once `body` returns.
        let context = Unmanaged.passRetained(Body(run: body)).toOpaque()
        #if canImport(Glibc)
        var thread = pthread_t()
        #else
        var thread: pthread_t?
        #endif
        let result = pthread_create(&thread, nil, { argument in
            let body = Unmanaged<Body>.fromOpaque(argument!).takeRetainedValue()
            body.run()
            return nil
        }, context)
        guard result == 0 else {
            Unmanaged<Body>.fromOpaque(context).release()
            throw KafkaError(.other, "cannot start thread '\(name)': pthread_create returned \(result)")
        }
        #if canImport(Glibc)
        pthread_detach(thread)
        #else
        pthread_detach(thread!)
        #endif
    }
}
