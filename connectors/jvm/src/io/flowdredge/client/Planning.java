package io.flowdredge.client;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;

/**
 * Calls that have a table environment's planner optimize, made on one gateway thread with
 * Calcite's metadata provider set there first. Calcite keeps the provider per thread
 * (RelMetadataQueryBase.THREAD_PROVIDERS), and Flink's planner sets it only on the thread that
 * built the planner's cluster; py4j serves a call on another of its threads when it opens a
 * second connection (GatewayClassLoader says when), and the plan then failed with
 * "NullPointerException: metadataHandlerProvider" (FLINK-36298, fixed after Flink 2.2). Set and
 * used in one call, so no other connection can come between.
 *
 * <p>By reflection: the planner's classes are in Flink's planner loader, not the adapters'.
 */
public final class Planning {
    private Planning() {}

    /** statementSet.attachAsDataStream(), `tableEnvironment` being the set's environment. */
    public static void attachAsDataStream(Object tableEnvironment, Object statementSet)
            throws Exception {
        seed(tableEnvironment);
        call(statementSet, "attachAsDataStream");
    }

    /** The planner's cluster given its own metadata provider again: Calcite sets it on this
     * thread as it does so. */
    private static void seed(Object tableEnvironment) throws Exception {
        Object cluster = call(call(call(tableEnvironment, "getPlanner"), "createRelBuilder"),
                              "getCluster");
        Object provider = call(cluster, "getMetadataProvider");
        for (Method method : cluster.getClass().getMethods()) {
            if (method.getName().equals("setMetadataProvider")) {
                invoke(method, cluster, provider);
                return;
            }
        }
        throw new NoSuchMethodException("RelOptCluster.setMetadataProvider");
    }

    private static Object call(Object target, String name) throws Exception {
        return invoke(target.getClass().getMethod(name), target);
    }

    private static Object invoke(Method method, Object target, Object... args) throws Exception {
        // Public methods of classes that need not be (the environment's, the set's).
        method.setAccessible(true);
        try {
            return method.invoke(target, args);
        } catch (InvocationTargetException thrown) {
            Throwable cause = thrown.getCause();
            if (cause instanceof Exception) {
                throw (Exception) cause;
            }
            throw (Error) cause;
        }
    }
}
